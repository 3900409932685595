import { describe, expect, it } from "vitest";
import { SdpNegotiationError, SdpParseError } from "../../sip/errors.js";
import { answerDirection, buildAnswer, buildOffer, parseSdp, readRemoteMedia } from "../../sip/sdp.js";

const PBX_ANSWER = [
  "v=0",
  "o=asterisk 1 2 IN IP4 10.0.0.5",
  "s=Asterisk",
  "c=IN IP4 10.0.0.5",
  "t=0 0",
  "m=audio 18000 RTP/AVP 8 0 96",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:96 telephone-event/8000",
  "a=fmtp:96 0-16",
  "a=ptime:30",
  "a=sendrecv",
  "",
].join("\r\n");

describe("buildOffer", () => {
  it("writes G.711, telephone-event, ptime, rtcp and direction with our address", () => {
    const sdp = buildOffer({ mediaAddress: "192.0.2.10", audioPort: 40000, sessionId: "42", sessionVersion: 3 });
    expect(sdp.split("\r\n")).toEqual([
      "v=0",
      "o=- 42 3 IN IP4 192.0.2.10",
      "s=-",
      "c=IN IP4 192.0.2.10",
      "t=0 0",
      "m=audio 40000 RTP/AVP 0 8 101",
      "a=rtpmap:0 PCMU/8000",
      "a=rtpmap:8 PCMA/8000",
      "a=rtpmap:101 telephone-event/8000",
      "a=fmtp:101 0-16",
      "a=ptime:20",
      "a=rtcp:40001",
      "a=sendrecv",
      "",
    ]);
  });

  it("is parameterised: codec order, no telephone-event, direction, rtcp port, H.264 video", () => {
    const sdp = buildOffer({
      mediaAddress: "192.0.2.10",
      audioPort: 40000,
      rtcpPort: 40101,
      audioCodecs: ["PCMA"],
      telephoneEventPayloadType: false,
      direction: "sendonly",
      video: { port: 40002, payloadType: 97, profileLevelId: "42801f", packetizationMode: 0 },
    });
    expect(sdp).toContain("m=audio 40000 RTP/AVP 8\r\n");
    expect(sdp).not.toContain("telephone-event");
    expect(sdp).toContain("a=rtcp:40101");
    expect(sdp).toContain("a=sendonly");
    expect(sdp).toContain("m=video 40002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42801f;packetization-mode=0\r\na=rtcp:40003");
    // What we write, we can read.
    expect(readRemoteMedia(sdp).video?.h264).toEqual({ payloadType: 97, fmtp: "profile-level-id=42801f;packetization-mode=0" });
  });
});

describe("readRemoteMedia", () => {
  it("takes the PBX's first G.711 format, its telephone-event PT, ptime and address", () => {
    const m = readRemoteMedia(PBX_ANSWER);
    expect(m.audio).toEqual({
      codec: "PCMA",
      payloadType: 8,
      clockRate: 8000,
      address: "10.0.0.5",
      port: 18000,
      rtcpAddress: "10.0.0.5",
      rtcpPort: 18001,
      telephoneEventPayloadType: 96,
      ptime: 30,
      direction: "sendrecv",
      onHold: false,
      mediaIndex: 0,
      security: { protocol: "RTP/AVP", secureProfile: false, crypto: [] },
    });
    expect(m.video).toBeUndefined();
  });

  it("honours a media-level c= over the session one, and a=rtcp with an address", () => {
    const sdp = PBX_ANSWER.replace("m=audio 18000 RTP/AVP 8 0 96", "m=audio 18000 RTP/AVP 0 8 96\r\nc=IN IP4 10.0.0.9\r\na=rtcp:18555 IN IP4 10.0.0.10");
    const m = readRemoteMedia(sdp);
    expect(m.audio.codec).toBe("PCMU");
    expect(m.audio.address).toBe("10.0.0.9");
    expect(m.audio.rtcpAddress).toBe("10.0.0.10");
    expect(m.audio.rtcpPort).toBe(18555);
  });

  it("uses static payload types without rtpmap and dynamic ones by name", () => {
    const noMap = "v=0\r\nc=IN IP4 10.1.1.1\r\nm=audio 5000 RTP/AVP 0\r\n";
    expect(readRemoteMedia(noMap).audio).toMatchObject({ codec: "PCMU", payloadType: 0, ptime: 20, telephoneEventPayloadType: undefined });
    const dynamic = "v=0\r\nc=IN IP4 10.1.1.1\r\nm=audio 5000 RTP/AVP 110 8\r\na=rtpmap:110 PCMU/8000\r\n";
    expect(readRemoteMedia(dynamic).audio).toMatchObject({ codec: "PCMU", payloadType: 110 });
  });

  it("reads direction at media and session level, and the c=0.0.0.0 hold", () => {
    expect(readRemoteMedia(PBX_ANSWER.replace("a=sendrecv", "a=sendonly")).audio).toMatchObject({ direction: "sendonly", onHold: true });
    expect(readRemoteMedia(PBX_ANSWER.replace("a=sendrecv", "a=recvonly")).audio).toMatchObject({ direction: "recvonly", onHold: false });
    expect(readRemoteMedia(PBX_ANSWER.replace("a=sendrecv", "a=inactive")).audio).toMatchObject({ direction: "inactive", onHold: true });
    const sessionLevel = PBX_ANSWER.replace("a=sendrecv\r\n", "").replace("t=0 0", "t=0 0\r\na=inactive");
    expect(readRemoteMedia(sessionLevel).audio.direction).toBe("inactive");
    const oldHold = PBX_ANSWER.replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0");
    expect(readRemoteMedia(oldHold).audio).toMatchObject({ direction: "sendrecv", onHold: true, address: "0.0.0.0" });
  });

  it("reports an active video m-line, and ignores a refused one", () => {
    const withVideo = `${PBX_ANSWER}m=video 18002 RTP/AVP 99 96\r\na=rtpmap:99 VP8/90000\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f\r\na=recvonly\r\n`;
    // (96 here is a video PT of its own section: payload types are per m-line.)
    const v = readRemoteMedia(withVideo).video;
    expect(v).toMatchObject({ port: 18002, address: "10.0.0.5", payloadTypes: [99, 96], h264: { payloadType: 96, fmtp: "profile-level-id=42e01f" }, direction: "recvonly", mediaIndex: 1 });
    expect(readRemoteMedia(withVideo.replace("m=video 18002", "m=video 0")).video).toBeUndefined();
  });

  it("throws SdpNegotiationError when no G.711 or no address or no audio", () => {
    expect(() => readRemoteMedia("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n")).toThrow(SdpNegotiationError);
    expect(() => readRemoteMedia("v=0\r\nm=audio 5000 RTP/AVP 0\r\n")).toThrow(/no connection address/);
    expect(() => readRemoteMedia("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n")).toThrow(/no active audio/);
    expect(() => readRemoteMedia("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 0\r\n")).toThrow(/not RTP or SRTP/);
  });
});

describe("parseSdp errors", () => {
  it.each([
    ["", /empty SDP/],
    ["o=- 1 1 IN IP4 1.2.3.4\r\n", /must start with v=0/],
    ["v=0\r\nthis is not sdp\r\n", /not an SDP line.*\(line 2\)/],
    ["v=0\r\nm=audio port RTP/AVP 0\r\n", /bad m= port.*\(line 2\)/],
    ["v=0\r\nm=audio 5000 RTP/AVP zero\r\n", /bad payload type/],
    ["v=0\r\nc=IN IP4\r\n", /bad c= line/],
    ["v=0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:zero\r\n", /bad a=rtpmap.*\(line 3\)/],
    ["v=0\r\nm=audio 5000 RTP/AVP 0\r\na=ptime:-1\r\n", /bad a=ptime/],
  ])("%j → SdpParseError", (text, message) => {
    expect(() => parseSdp(text)).toThrow(SdpParseError);
    expect(() => parseSdp(text)).toThrow(message);
  });

  it("accepts bare \\n line ends and keeps fmtp per payload type", () => {
    const p = parseSdp("v=0\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/AVP 0 101\na=fmtp:101 0-15\n");
    expect(p.media[0]?.fmtps.get(101)).toBe("0-15");
  });
});

describe("buildAnswer", () => {
  const offer = [
    "v=0",
    "o=pbx 1 1 IN IP4 10.0.0.5",
    "s=-",
    "c=IN IP4 10.0.0.5",
    "t=0 0",
    "m=audio 18000 RTP/AVP 9 8 0 101",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=sendonly",
    "m=video 18002 RTP/AVP 96",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1",
    "m=application 9 UDP/BFCP *",
    "",
  ].join("\r\n");

  it("answers every m-line in order: PBX-preferred G.711, its DTMF PT, mirrored direction, refused extras", () => {
    const answer = buildAnswer(offer, { mediaAddress: "192.0.2.10", audioPort: 40000, sessionId: "7" });
    const lines = answer.split("\r\n");
    expect(lines).toContain("m=audio 40000 RTP/AVP 8 101");
    expect(lines).toContain("a=rtpmap:8 PCMA/8000");
    expect(lines).toContain("a=recvonly");
    expect(lines).toContain("m=video 0 RTP/AVP 96");
    expect(lines).toContain("m=application 0 UDP/BFCP *");
    expect(lines.filter((l) => l.startsWith("m="))).toHaveLength(3);
  });

  it("accepts video with the PBX's payload type and fmtp when we have a video port", () => {
    const answer = buildAnswer(offer, { mediaAddress: "192.0.2.10", audioPort: 40000, video: { port: 40002 } });
    expect(answer).toContain("m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1");
  });

  it("restricts to our codecs and fails clearly when none is offered", () => {
    expect(buildAnswer(offer, { mediaAddress: "192.0.2.10", audioPort: 40000, audioCodecs: ["PCMU"] })).toContain("m=audio 40000 RTP/AVP 0 101");
    const pcmaOnly = offer.replace("m=audio 18000 RTP/AVP 9 8 0 101", "m=audio 18000 RTP/AVP 8");
    expect(() => buildAnswer(pcmaOnly, { mediaAddress: "192.0.2.10", audioPort: 40000, audioCodecs: ["PCMU"] })).toThrow(SdpNegotiationError);
  });

  it("mirrors directions", () => {
    expect(answerDirection("sendonly")).toBe("recvonly");
    expect(answerDirection("recvonly")).toBe("sendonly");
    expect(answerDirection("inactive")).toBe("inactive");
    expect(answerDirection("sendrecv")).toBe("sendrecv");
  });
});

import { describe, expect, it } from "vitest";
import {
  addEndOfCandidates,
  canonicalEncodingNames,
  keepFirstBundleGroup,
  dropTrickleOption,
  keepSha256FingerprintsOnly,
  reorderVideoFormats,
  summarizeSdp,
  validateRemoteSdp,
} from "../../gateway/webrtc/sdp.js";

// Meta's Messenger re-offer after accept, abbreviated from the documentation's appendix.
const META_REOFFER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0 1",
  "a=ice-lite",
  "a=x-fb-feature:pqc-0",
  "m=audio 40007 UDP/TLS/RTP/SAVPF 111",
  "c=IN IP4 157.240.22.131",
  "a=candidate:1 1 udp 2122260224 157.240.22.131 40007 typ host generation 1",
  "a=ice-ufrag:EbT4cXksCyVKQMC/103",
  "a=ice-pwd:abcdefghijklmnopqrstuv",
  "a=fingerprint:sha-256 AA:BB",
  "a=setup:passive",
  "a=mid:0",
  "a=recvonly",
  "a=rtcp-mux",
  "a=rtpmap:111 opus/48000/2",
  "m=audio 40007 UDP/TLS/RTP/SAVPF 111 110",
  "c=IN IP4 157.240.22.131",
  "a=ice-ufrag:EbT4cXksCyVKQMC/103",
  "a=ice-pwd:abcdefghijklmnopqrstuv",
  "a=fingerprint:sha-256 AA:BB",
  "a=setup:passive",
  "a=mid:1",
  "a=sendonly",
  "a=msid:stream track",
  "a=rtcp-mux",
  "a=rtpmap:111 opus/48000/2",
  "a=rtpmap:110 telephone-event/48000",
  "a=ssrc:4242 cname:x",
  "",
].join("\r\n");

describe("Meta leg SDP shaping", () => {
  it("summarizes split transceivers of Meta's re-offer", () => {
    const s = summarizeSdp(META_REOFFER);
    expect(s.bundle).toEqual(["0", "1"]);
    expect(s.iceLite).toBe(true);
    expect(s.media.map((m) => [m.mid, m.direction])).toEqual([
      ["0", "recvonly"],
      ["1", "sendonly"],
    ]);
    expect(s.media[1]!.ssrcs).toEqual([4242]);
    expect(s.media[1]!.codecs.map((c) => `${c.name}/${c.clockRate}`)).toEqual(["opus/48000", "telephone-event/48000"]);
  });

  it("keeps only sha-256 fingerprints", () => {
    const sdp = "v=0\r\na=fingerprint:sha-384 11:22\r\na=fingerprint:sha-256 AA:BB\r\na=fingerprint:sha-512 33\r\n";
    expect(keepSha256FingerprintsOnly(sdp)).toBe("v=0\r\na=fingerprint:sha-256 AA:BB\r\n");
  });

  it("marks every m-line's candidates complete, once", () => {
    const out = addEndOfCandidates(META_REOFFER);
    expect(out.match(/a=end-of-candidates/g)).toHaveLength(2);
    expect(addEndOfCandidates(out)).toBe(out);
    expect(out.endsWith("\r\n")).toBe(true);
  });

  it("drops the trickle ice-option we never honour", () => {
    expect(dropTrickleOption("v=0\na=ice-options:trickle\na=mid:0\n")).toBe("v=0\r\na=mid:0\r\n");
  });

  it("accepts LF-only SDP", () => {
    expect(summarizeSdp(META_REOFFER.replace(/\r\n/g, "\n")).media).toHaveLength(2);
  });

  it("explains unusable SDP", () => {
    expect(validateRemoteSdp(META_REOFFER, "offer")).toBeUndefined();
    expect(validateRemoteSdp("hello", "answer")).toMatch(/v=0/);
    expect(validateRemoteSdp("v=0\r\ns=-\r\n", "answer")).toMatch(/m= line/);
    expect(validateRemoteSdp(META_REOFFER.replace(/a=fingerprint:.*\r\n/g, ""), "offer")).toMatch(/fingerprint/);
    expect(validateRemoteSdp(META_REOFFER.replace(/a=ice-pwd:.*\r\n/g, ""), "offer")).toMatch(/ICE/);
    expect(validateRemoteSdp(META_REOFFER.replace(/setup:passive/g, "setup:actpass"), "answer")).toMatch(/actpass/);
  });
});

describe("video codec order in Meta's offers", () => {
  const offer = [
    "v=0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 98 100 109 45",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:98 VP9/90000",
    "a=rtpmap:100 H264/90000",
    "a=fmtp:100 profile-level-id=640032;packetization-mode=1",
    "a=rtpmap:109 H264/90000",
    "a=fmtp:109 profile-level-id=42e01f;packetization-mode=1",
    "a=rtpmap:45 AV1/90000",
    "",
  ].join("\r\n");

  it("puts the preferred payload types first and keeps the rest", () => {
    const out = reorderVideoFormats(offer, (offered) => {
      expect(offered.map((o) => o.encodingName)).toEqual(["VP8", "VP9", "H264", "H264", "AV1"]);
      expect(offered[3]!.fmtp).toBe("profile-level-id=42e01f;packetization-mode=1");
      return [109, 96];
    });
    expect(out).toMatch(/^m=video 9 UDP\/TLS\/RTP\/SAVPF 109 96 98 100 45\r$/m);
    expect(out).toMatch(/^m=audio 9 UDP\/TLS\/RTP\/SAVPF 111\r$/m);
  });

  it("leaves rejected video m-lines alone", () => {
    const rejected = offer.replace("m=video 9", "m=video 0");
    expect(reorderVideoFormats(rejected, () => [109])).toBe(rejected);
  });
});

describe("canonicalEncodingNames", () => {
  it("writes encoding names as Meta's samples and browsers do, touching nothing else", () => {
    const ours = ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111 110", "a=rtpmap:111 OPUS/48000/2", "a=rtpmap:110 TELEPHONE-EVENT/48000", "a=fmtp:111 minptime=10", "m=video 9 UDP/TLS/RTP/SAVPF 109 96", "a=rtpmap:109 h264/90000", "a=rtpmap:96 vp8/90000", "a=rtpmap:97 x-unknown/90000"].join("\n");
    expect(canonicalEncodingNames(ours)).toBe(
      ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111 110", "a=rtpmap:111 opus/48000/2", "a=rtpmap:110 telephone-event/48000", "a=fmtp:111 minptime=10", "m=video 9 UDP/TLS/RTP/SAVPF 109 96", "a=rtpmap:109 H264/90000", "a=rtpmap:96 VP8/90000", "a=rtpmap:97 x-unknown/90000"].join("\r\n") + "\r\n",
    );
  });
});

describe("keepFirstBundleGroup", () => {
  it("keeps one BUNDLE group: a repeated line (or a second group) would make werift open a transport it never closes", () => {
    const offer = ["v=0", "a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1", "a=msid-semantic: WMS", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0"].join("\r\n");
    expect(keepFirstBundleGroup(offer)).toBe(["v=0", "a=group:BUNDLE 0 1", "a=msid-semantic: WMS", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0"].join("\r\n") + "\r\n");
    expect(keepFirstBundleGroup("v=0\r\na=group:BUNDLE 0\r\na=group:BUNDLE 1\r\n")).toBe("v=0\r\na=group:BUNDLE 0\r\n");
  });
});

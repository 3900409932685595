import { describe, expect, it } from "vitest";
import { inferBusinessAnswer, META_OPUS_FMTP, shapeMetaAnswer, shapeMetaReoffer } from "../../sim/sdp-meta-style.js";
import { attribute, bundleMids, mediaDirection, mediaMid, parseSdp, serializeSdp } from "../../sim/sdp-text.js";
import { VALID_OFFER } from "./sim-helpers.js";

/** The shape werift gives the consumer's re-offer before Meta styling. */
const WERIFT_REOFFER = [
  "v=0",
  "o=- 12994100 0 IN IP4 0.0.0.0",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0 1",
  "a=msid-semantic:WMS *",
  ...["0", "1"].flatMap((mid) => [
    `m=audio 9 UDP/TLS/RTP/SAVPF 111`,
    "c=IN IP4 0.0.0.0",
    "a=candidate:6d 1 udp 2116026367 127.0.0.1 39678 typ host generation 0 ufrag 8eee",
    "a=end-of-candidates",
    "a=ice-ufrag:8eee",
    "a=ice-pwd:6af60ef264ef6edfba4df5",
    "a=ice-lite",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 AA:BB",
    "a=setup:passive",
    mid === "0" ? "a=recvonly" : "a=sendonly",
    `a=mid:${mid}`,
    ...(mid === "1" ? ["a=msid:meta-1 track-1"] : []),
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=rtcp-mux",
    `a=ssrc:${mid === "0" ? 111 : 222} cname:meta`,
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
  ]),
  "",
].join("\r\n");

describe("SDP text model", () => {
  it("round-trips sections and reads attributes", () => {
    const doc = parseSdp(VALID_OFFER);
    expect(serializeSdp(doc)).toBe(VALID_OFFER);
    expect(bundleMids(doc)).toEqual(["0"]);
    expect(attribute(doc.media[0]!.lines, "ice-ufrag")).toBe("abcd");
  });
});

describe("Meta-style shaping", () => {
  it("puts ice-lite at session level, real host address in m=/c= and Meta's Opus fmtp", () => {
    const doc = parseSdp(shapeMetaAnswer(WERIFT_REOFFER));
    expect(doc.session).toContain("a=ice-lite");
    for (const m of doc.media) {
      expect(m.port).toBe(39678);
      expect(m.lines).toContain("c=IN IP4 127.0.0.1");
      expect(m.lines).toContain("a=ice-options:fb-force-5245");
      expect(m.lines).toContain(`a=fmtp:111 ${META_OPUS_FMTP}`);
      expect(m.lines).not.toContain("a=ice-lite");
      expect(m.lines).not.toContain("a=x-google-flag:conference");
    }
  });

  it("adds the conference flag, pqc feature and rtcp-rsize to re-offers", () => {
    const doc = parseSdp(shapeMetaReoffer(WERIFT_REOFFER));
    expect(doc.session).toContain("a=x-fb-feature:pqc-0");
    for (const m of doc.media) {
      expect(m.lines).toContain("a=x-google-flag:conference");
      expect(m.lines.indexOf("a=rtcp-rsize")).toBe(m.lines.indexOf("a=rtcp-mux") + 1);
    }
  });
});

describe("inferBusinessAnswer", () => {
  const answer = parseSdp(inferBusinessAnswer(VALID_OFFER, shapeMetaReoffer(WERIFT_REOFFER)));

  it("answers every m-line in the BUNDLE with the business's transport as DTLS client", () => {
    expect(bundleMids(answer)).toEqual(["0", "1"]);
    for (const m of answer.media) {
      expect(attribute(m.lines, "ice-ufrag")).toBe("abcd");
      expect(attribute(m.lines, "ice-pwd")).toBe("0123456789abcdef012345");
      expect(attribute(m.lines, "setup")).toBe("active");
      expect(attribute(m.lines, "fingerprint")).toMatch(/^sha-256 /);
      expect(m.lines.some((l) => l.startsWith("a=candidate:1 1 udp"))).toBe(true);
      expect(m.formats).toEqual(["111"]);
    }
  });

  it("mirrors directions and keeps the business's own ssrc where it sends", () => {
    const [mid0, mid1] = answer.media;
    expect([mediaMid(mid0!), mediaDirection(mid0!)]).toEqual(["0", "sendonly"]);
    expect(mid0!.lines).toContain("a=ssrc:1234 cname:gw");
    expect(mid0!.lines).toContain("a=msid:stream track");
    expect([mediaMid(mid1!), mediaDirection(mid1!)]).toEqual(["1", "recvonly"]);
    expect(mid1!.lines.some((l) => l.startsWith("a=ssrc:"))).toBe(false);
    expect(mid1!.lines).toContain("a=fmtp:111 minptime=10;useinbandfec=1");
  });

  it("does not let the business send where it offered only to receive", () => {
    const recvOnlyOffer = VALID_OFFER.replace("a=sendrecv", "a=recvonly");
    const inferred = parseSdp(inferBusinessAnswer(recvOnlyOffer, shapeMetaReoffer(WERIFT_REOFFER)));
    expect(mediaDirection(inferred.media[0]!)).toBe("inactive");
  });
});

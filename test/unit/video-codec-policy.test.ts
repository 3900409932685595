import { describe, expect, it } from "vitest";
import { chooseVideoCodec, parseFmtp, type OfferedVideoCodec } from "../../transcode/video/codec-policy.js";
import { formatProfileLevelId, parseProfileLevelId, profileDecodableBy } from "../../transcode/video/h264-profile.js";

const vp8: OfferedVideoCodec = { encodingName: "VP8", payloadType: 96 };
const vp9: OfferedVideoCodec = { encodingName: "VP9", payloadType: 98, fmtp: "profile-id=0" };
const av1: OfferedVideoCodec = { encodingName: "AV1", payloadType: 45 };
const h265: OfferedVideoCodec = { encodingName: "H265", payloadType: 49, fmtp: "level-id=93" };
const rtx: OfferedVideoCodec = { encodingName: "rtx", payloadType: 97, fmtp: "apt=96" };
const h264 = (pt: number, fmtp: string): OfferedVideoCodec => ({ encodingName: "H264", payloadType: pt, fmtp });
const cbMode1 = h264(102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
const cbMode0 = h264(104, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f");
const highMode1 = h264(106, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f");
const mainMode1 = h264(108, "packetization-mode=1;profile-level-id=4d001f");

describe("H.264 profile-level-id", () => {
  it("reads profiles and levels as WebRTC does", () => {
    expect(parseProfileLevelId("42e01f")).toMatchObject({ profile: "constrained-baseline", level: 31 });
    expect(parseProfileLevelId("42001f")).toMatchObject({ profile: "baseline", level: 31 });
    expect(parseProfileLevelId("4d001f")).toMatchObject({ profile: "main", level: 31 });
    expect(parseProfileLevelId("4d801f")).toMatchObject({ profile: "constrained-baseline" });
    expect(parseProfileLevelId("640c1f")).toMatchObject({ profile: "constrained-high" });
    expect(parseProfileLevelId("640032")).toMatchObject({ profile: "high", level: 50 });
    expect(parseProfileLevelId("42f00b")).toMatchObject({ profile: "constrained-baseline", level: 9 }); // 1b
    expect(parseProfileLevelId(undefined)).toMatchObject({ profile: "baseline", level: 10 }); // RFC default
    expect(parseProfileLevelId("zz")).toBeUndefined();
    expect(parseProfileLevelId("110000")).toBeUndefined();
    expect(formatProfileLevelId(0x42, 0xe0, 9)).toBe("42f00b");
    expect(formatProfileLevelId(0x64, 0x00, 9)).toBe("640009");
  });

  it("knows which decoder profiles take which streams", () => {
    expect(profileDecodableBy("constrained-baseline", "high")).toBe(true);
    expect(profileDecodableBy("baseline", "main")).toBe(false); // FMO/ASO are not in Main
    expect(profileDecodableBy("high", "main")).toBe(false);
    expect(profileDecodableBy("main", "high")).toBe(true);
  });
});

describe("chooseVideoCodec", () => {
  const pbxCb1 = { h264: [{ profileLevelId: "42e01f", packetizationMode: 1 }] };

  it("passes H.264 through when the PBX decodes the offered profile in mode 1", () => {
    const choice = chooseVideoCodec([vp8, vp9, cbMode0, cbMode1, rtx], pbxCb1);
    expect(choice).toMatchObject({ mode: "passthrough", transcode: false, codec: "H264", offer: { payloadType: 102 } });
    if (choice.mode !== "passthrough") throw new Error("unreachable");
    expect(parseFmtp(choice.answerFmtp)).toMatchObject({ "profile-level-id": "42e01f", "packetization-mode": "1" });
    expect(choice.preference[0]).toBe(102);
    expect(choice.preference).not.toContain(97);
  });

  it("answers with the PBX's level so Meta does not send more than the PBX decodes", () => {
    const choice = chooseVideoCodec([cbMode1], { h264: [{ profileLevelId: "42e01e", packetizationMode: 1 }] });
    if (choice.mode !== "passthrough") throw new Error(`expected passthrough, got ${choice.mode}`);
    expect(parseFmtp(choice.answerFmtp)["profile-level-id"]).toBe("42e01e");
    // Without level asymmetry the level is the lower of both.
    const noAsym = chooseVideoCodec([h264(102, "packetization-mode=1;profile-level-id=42e01e")], { h264: [{ profileLevelId: "42e028", packetizationMode: 1 }] });
    if (noAsym.mode !== "passthrough") throw new Error("expected passthrough");
    expect(parseFmtp(noAsym.answerFmtp)["profile-level-id"]).toBe("42e01e");
  });

  it("passes a constrained-baseline stream to a High-profile PBX, but not High to a baseline PBX", () => {
    expect(chooseVideoCodec([cbMode1], { h264: [{ profileLevelId: "640028", packetizationMode: 1 }] }).mode).toBe("passthrough");
    const choice = chooseVideoCodec([highMode1, vp8], pbxCb1);
    expect(choice).toMatchObject({ mode: "transcode", transcode: true, codec: "H264", offer: { payloadType: 106 } });
  });

  it("prefers mode 1 for passthrough but uses mode 0 when that is all the PBX takes", () => {
    expect(chooseVideoCodec([cbMode0, cbMode1], { h264: [{ profileLevelId: "42e01f", packetizationMode: 0 }] })).toMatchObject({
      mode: "passthrough",
      offer: { payloadType: 104 },
    });
    expect(
      chooseVideoCodec([cbMode0, cbMode1], { h264: [{ profileLevelId: "42e01f", packetizationMode: 0 }, { profileLevelId: "42e01f", packetizationMode: 1 }] }),
    ).toMatchObject({ mode: "passthrough", offer: { payloadType: 102 } });
  });

  it("without passthrough, transcodes the cheapest: H.264 < VP8 < VP9 ≈ AV1 < H.265", () => {
    expect(chooseVideoCodec([h265, av1, vp9, vp8], pbxCb1)).toMatchObject({ mode: "transcode", codec: "VP8" });
    expect(chooseVideoCodec([h265, av1, vp9], pbxCb1)).toMatchObject({ codec: "AV1" }); // tie: Meta's order
    expect(chooseVideoCodec([h265, vp9, av1], pbxCb1)).toMatchObject({ codec: "VP9" });
    expect(chooseVideoCodec([h265], pbxCb1)).toMatchObject({ codec: "H265", transcode: true });
    expect(chooseVideoCodec([vp8, mainMode1], pbxCb1)).toMatchObject({ codec: "H264", offer: { payloadType: 108 } });
    const choice = chooseVideoCodec([h265, av1, vp9, vp8], pbxCb1);
    if (choice.mode !== "transcode") throw new Error("expected transcode");
    expect(choice.preference).toEqual([96, 45, 98, 49]);
    expect(choice.pbxFormat).toEqual(pbxCb1.h264[0]);
    expect(choice.pbxLevel).toBe(31);
  });

  it("treats an absent PBX profile-level-id as RFC 6184's Baseline 1.0 and mode as 0", () => {
    const choice = chooseVideoCodec([cbMode1, vp8], { h264: [{}] });
    // CB mode 1 is not accepted by a mode-0 PBX: transcode toward its mode 0, level 1.0.
    expect(choice).toMatchObject({ mode: "transcode", codec: "H264", pbxLevel: 10, pbxFormat: {} });
  });

  it("gives up when nothing decodable is offered or the PBX cannot take our output", () => {
    expect(chooseVideoCodec([rtx, { encodingName: "red", payloadType: 100 }], pbxCb1)).toEqual({
      mode: "none",
      transcode: false,
      reason: "no-decodable-offer",
    });
    expect(chooseVideoCodec([vp8], { h264: [] })).toMatchObject({ mode: "none", reason: "pbx-takes-no-constrained-baseline" });
  });

  it("reads fmtp given as a record too", () => {
    const offer: OfferedVideoCodec = { encodingName: "h264", payloadType: 120, fmtp: { "packetization-mode": "1", "profile-level-id": "42e01f" } };
    expect(chooseVideoCodec([offer], pbxCb1)).toMatchObject({ mode: "passthrough", offer: { payloadType: 120 } });
  });
});

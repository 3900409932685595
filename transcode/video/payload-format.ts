/**
 * Per-codec RTP payload formats on the receive side: does a packet begin a frame, and how do the payloads of
 * one frame's packets (in sequence order, none missing) become the frame. Frames come out as IVF payloads for
 * VP8/VP9/AV1 (the codec's own frame / temporal unit in low-overhead OBU format) and as Annex-B access units
 * for H.264/H.265.
 */
import { AV1RtpPayload, Vp9RtpPayload } from "werift";
import { h264NalType, h265NalType, H264_NAL, H265_NAL, joinAnnexB } from "./annexb.js";
import { PayloadFormatError } from "./errors.js";
import { AV1_OBU, readLeb128 } from "./keyframe.js";
import type { VideoCodec } from "./video-codec.js";
import { parseVp8Descriptor } from "./vp8-descriptor.js";


export interface PayloadFormat {
  /**
   * true: this packet certainly begins a frame; false: it certainly continues one; undefined: the payload
   * alone does not say (the caller then relies on the previous packet's timestamp and marker).
   */
  startsFrame(payload: Buffer): boolean | undefined;
  /** The frame carried by these payloads; throws PayloadFormatError on a malformed or incomplete frame. */
  assemble(payloads: readonly Buffer[]): Buffer;
}

export function payloadFormatFor(codec: VideoCodec): PayloadFormat {
  switch (codec) {
    case "VP8":
      return vp8Format;
    case "VP9":
      return vp9Format;
    case "AV1":
      return av1Format;
    case "H264":
      return h264Format;
    case "H265":
      return h265Format;
  }
}

const vp8Format: PayloadFormat = {
  startsFrame(payload) {
    if (payload.length === 0) return undefined;
    const d = parseVp8Descriptor(payload);
    return d.start && d.partitionId === 0;
  },
  assemble(payloads) {
    const frame = Buffer.concat(payloads.map((p) => p.subarray(parseVp8Descriptor(p).headerSize)));
    if (frame.length === 0) throw new PayloadFormatError("VP8 frame without data");
    return frame;
  },
};

const vp9Format: PayloadFormat = {
  startsFrame(payload) {
    if (payload.length < 1) return undefined;
    return (payload[0]! & 0x08) !== 0; // B bit
  },
  assemble(payloads) {
    try {
      return Buffer.concat(payloads.map((p) => p.subarray(Vp9RtpPayload.parseRtpPayload(p).offset)));
    } catch (err) {
      throw new PayloadFormatError(`malformed VP9 payload: ${(err as Error).message || "parse error"}`);
    }
  },
};

const av1Format: PayloadFormat = {
  startsFrame(payload) {
    const header = payload[0];
    if (header === undefined) return undefined;
    if (header & 0x80) return false; // Z: continues an OBU fragment from the previous packet
    if (header & 0x08) return true; // N: first packet of a coded video sequence
    // The first OBU element carries a length prefix unless W says it is the only element.
    let offset = 1;
    if (((header >> 4) & 0x03) !== 1) {
      const leb = readLeb128(payload, offset);
      if (!leb) return undefined;
      offset += leb.length;
    }
    const obuHeader = payload[offset];
    if (obuHeader === undefined) return undefined;
    const type = (obuHeader >> 3) & 0x0f;
    if (type === AV1_OBU.tileGroup) return false;
    return type === AV1_OBU.sequenceHeader || type === AV1_OBU.temporalDelimiter || type === AV1_OBU.frame ||
      type === AV1_OBU.frameHeader || type === AV1_OBU.metadata
      ? true
      : undefined;
  },
  assemble(payloads) {
    try {
      const data = AV1RtpPayload.getFrame(payloads.map((p) => AV1RtpPayload.deSerialize(p)));
      if (data.length === 0) throw new PayloadFormatError("AV1 frame without OBUs");
      return data;
    } catch (err) {
      if (err instanceof PayloadFormatError) throw err;
      throw new PayloadFormatError(`malformed AV1 payload: ${(err as Error).message || "parse error"}`);
    }
  },
};

/* H.264 (RFC 6184): single NAL units, STAP-A, FU-A. --------------------------------------------------------- */

/** A VCL NAL whose first_mb_in_slice is 0 (the ue(v) code "1") starts a picture. */
function h264NalStartsPicture(nalType: number, firstPayloadByte: number | undefined): boolean | undefined {
  if (nalType === H264_NAL.slice || nalType === H264_NAL.idr) {
    if (firstPayloadByte === undefined) return undefined;
    return (firstPayloadByte & 0x80) !== 0;
  }
  if (nalType === H264_NAL.sei || nalType === H264_NAL.sps || nalType === H264_NAL.pps || nalType === H264_NAL.aud) {
    return true;
  }
  return undefined;
}

const h264Format: PayloadFormat = {
  startsFrame(payload) {
    const type = h264NalType(payload);
    if (type >= 1 && type <= 23) return h264NalStartsPicture(type, payload[1]);
    if (type === H264_NAL.stapA) {
      const first = payload[3];
      return first === undefined ? undefined : h264NalStartsPicture(first & 0x1f, payload[4]);
    }
    if (type === H264_NAL.fuA) {
      const fuHeader = payload[1];
      if (fuHeader === undefined) return undefined;
      if ((fuHeader & 0x80) === 0) return false;
      return h264NalStartsPicture(fuHeader & 0x1f, payload[2]);
    }
    return undefined;
  },
  assemble(payloads) {
    const nalus: Uint8Array[] = [];
    let fragments: Buffer[] | undefined;
    for (const p of payloads) {
      const type = h264NalType(p);
      if (type >= 1 && type <= 23) {
        nalus.push(p);
      } else if (type === H264_NAL.stapA) {
        let offset = 1;
        while (offset + 2 <= p.length) {
          const size = p.readUInt16BE(offset);
          offset += 2;
          if (size === 0 || offset + size > p.length) throw new PayloadFormatError("H.264 STAP-A size overruns");
          nalus.push(p.subarray(offset, offset + size));
          offset += size;
        }
      } else if (type === H264_NAL.fuA) {
        if (p.length < 3) throw new PayloadFormatError("H.264 FU-A too short");
        const fuHeader = p[1]!;
        if (fuHeader & 0x80) {
          fragments = [Buffer.of((p[0]! & 0xe0) | (fuHeader & 0x1f))];
        } else if (!fragments) {
          throw new PayloadFormatError("H.264 FU-A continuation without start");
        }
        fragments.push(p.subarray(2));
        if (fuHeader & 0x40) {
          nalus.push(Buffer.concat(fragments));
          fragments = undefined;
        }
      } else {
        throw new PayloadFormatError(`H.264 payload type ${type} not supported (packetization-mode 0/1 only)`);
      }
    }
    if (fragments) throw new PayloadFormatError("H.264 FU-A without end");
    if (nalus.length === 0) throw new PayloadFormatError("H.264 frame without NAL units");
    return joinAnnexB(nalus);
  },
};

/* H.265 (RFC 7798): single NAL units, aggregation packets, fragmentation units; no DONL. ------------------- */

function h265NalStartsPicture(nalType: number, firstSliceByte: number | undefined): boolean | undefined {
  if (nalType < 32) {
    if (firstSliceByte === undefined) return undefined;
    return (firstSliceByte & 0x80) !== 0; // first_slice_segment_in_pic_flag
  }
  if (
    nalType === H265_NAL.vps ||
    nalType === H265_NAL.sps ||
    nalType === H265_NAL.pps ||
    nalType === H265_NAL.aud ||
    nalType === H265_NAL.prefixSei
  ) {
    return true;
  }
  return undefined;
}

const h265Format: PayloadFormat = {
  startsFrame(payload) {
    const type = h265NalType(payload);
    if (type < 48) return h265NalStartsPicture(type, payload[2]);
    if (type === H265_NAL.ap) {
      const first = payload[4];
      return first === undefined ? undefined : h265NalStartsPicture((first >> 1) & 0x3f, payload[6]);
    }
    if (type === H265_NAL.fu) {
      const fuHeader = payload[2];
      if (fuHeader === undefined) return undefined;
      if ((fuHeader & 0x80) === 0) return false;
      return h265NalStartsPicture(fuHeader & 0x3f, payload[3]);
    }
    return undefined;
  },
  assemble(payloads) {
    const nalus: Uint8Array[] = [];
    let fragments: Buffer[] | undefined;
    for (const p of payloads) {
      if (p.length < 3) throw new PayloadFormatError("H.265 payload too short");
      const type = h265NalType(p);
      if (type < 48) {
        nalus.push(p);
      } else if (type === H265_NAL.ap) {
        let offset = 2;
        while (offset + 2 <= p.length) {
          const size = p.readUInt16BE(offset);
          offset += 2;
          if (size === 0 || offset + size > p.length) throw new PayloadFormatError("H.265 AP size overruns");
          nalus.push(p.subarray(offset, offset + size));
          offset += size;
        }
      } else if (type === H265_NAL.fu) {
        const fuHeader = p[2]!;
        if (fuHeader & 0x80) {
          const fuType = fuHeader & 0x3f;
          fragments = [Buffer.of((p[0]! & 0x81) | (fuType << 1), p[1]!)];
        } else if (!fragments) {
          throw new PayloadFormatError("H.265 FU continuation without start");
        }
        fragments.push(p.subarray(3));
        if (fuHeader & 0x40) {
          nalus.push(Buffer.concat(fragments));
          fragments = undefined;
        }
      } else {
        throw new PayloadFormatError(`H.265 payload type ${type} not supported`);
      }
    }
    if (fragments) throw new PayloadFormatError("H.265 FU without end");
    if (nalus.length === 0) throw new PayloadFormatError("H.265 frame without NAL units");
    return joinAnnexB(nalus);
  },
};

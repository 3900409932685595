import { timingSafeEqual } from "node:crypto";
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RtpPacket, SrtcpSession, SrtpSession } from "werift";
import { SipError } from "../errors.js";
import type { SrtpSuite } from "./sdes.js";

/** A packet that fails SRTP/SRTCP authentication or cannot be decrypted. */
export class SrtpError extends SipError {}

export interface SrtpKeys {
  suite: SrtpSuite;
  /** Our master key and salt (what we encrypt with). */
  local: { key: Buffer; salt: Buffer };
  /** The peer's (what we decrypt with). */
  remote: { key: Buffer; salt: Buffer };
}

/** RTP header length including CSRCs and the extension: the part SRTP leaves in clear. */
function rtpHeaderLength(packet: Buffer): number {
  if (packet.length < 12) throw new SrtpError("SRTP packet shorter than an RTP header");
  let length = 12 + (packet[0]! & 0x0f) * 4;
  if (packet[0]! & 0x10) {
    if (packet.length < length + 4) throw new SrtpError("SRTP packet header extension truncated");
    length += 4 + packet.readUInt16BE(length + 2) * 4;
  }
  if (packet.length < length) throw new SrtpError("SRTP packet header truncated");
  return length;
}

/**
 * One stream's SRTP and SRTCP (RFC 3711) with SDES keys, on werift's SRTP sessions (the
 * implementation the Meta leg uses). werift runs AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM;
 * AES_CM_128_HMAC_SHA1_32 differs from _80 only in an RTP tag cut to its first 4 bytes (SRTCP
 * keeps 10, RFC 4568 §6.2.1), so it runs on the _80 session with the tag cut on the way out and
 * checked on the way in.
 */
export class SrtpTransform {
  readonly suite: SrtpSuite;
  private readonly srtp: SrtpSession;
  private readonly srtcp: SrtcpSession;

  constructor(keys: SrtpKeys) {
    this.suite = keys.suite;
    const profile = keys.suite === "AEAD_AES_128_GCM" ? ProtectionProfileAeadAes128Gcm : ProtectionProfileAes128CmHmacSha1_80;
    const config = {
      keys: { localMasterKey: keys.local.key, localMasterSalt: keys.local.salt, remoteMasterKey: keys.remote.key, remoteMasterSalt: keys.remote.salt },
      profile,
    };
    this.srtp = new SrtpSession(config);
    this.srtcp = new SrtcpSession(config);
  }

  /** A plain RTP packet to SRTP. */
  protectRtp(packet: Buffer): Buffer {
    const rtp = RtpPacket.deSerialize(packet);
    const out = this.srtp.encrypt(rtp.payload, rtp.header);
    return this.suite === "AES_CM_128_HMAC_SHA1_32" ? out.subarray(0, out.length - 6) : out;
  }

  /** An SRTP packet to plain RTP; throws SrtpError when it does not authenticate. */
  unprotectRtp(packet: Buffer): Buffer {
    try {
      if (this.suite !== "AES_CM_128_HMAC_SHA1_32") return this.srtp.decrypt(packet);
      return this.srtp.decrypt(this.widenTag(packet));
    } catch (err) {
      if (err instanceof SrtpError) throw err;
      throw new SrtpError("SRTP packet did not authenticate", { cause: err });
    }
  }

  /** A plain (compound) RTCP packet to SRTCP. */
  protectRtcp(packet: Buffer): Buffer {
    return this.srtcp.encrypt(packet);
  }

  /** An SRTCP packet to plain RTCP; throws SrtpError when it does not authenticate. */
  unprotectRtcp(packet: Buffer): Buffer {
    try {
      return this.srtcp.decrypt(packet);
    } catch (err) {
      throw new SrtpError("SRTCP packet did not authenticate", { cause: err });
    }
  }

  /**
   * Checks a 32-bit tag and returns the packet with the full 80-bit tag the _80 session checks.
   * The rollover counter is guessed on a copy of the stream's state: the session's own decrypt
   * updates the real one once the packet is known to be genuine.
   */
  private widenTag(packet: Buffer): Buffer {
    const headerLength = rtpHeaderLength(packet);
    if (packet.length < headerLength + 4) throw new SrtpError("SRTP packet shorter than its tag");
    const body = packet.subarray(0, packet.length - 4);
    const tag = packet.subarray(packet.length - 4);
    const ctx = this.srtp.remoteContext;
    const ssrc = packet.readUInt32BE(8);
    const existing = ctx.srtpSSRCStates[ssrc];
    const state = existing ? { ...existing } : { ssrc, rolloverCounter: 0, lastSequenceNumber: 0 };
    ctx.updateRolloverCount(packet.readUInt16BE(2), state);
    const full = ctx.generateSrtpAuthTag(body, state.rolloverCounter);
    if (!timingSafeEqual(full.subarray(0, 4), tag)) throw new SrtpError("SRTP packet did not authenticate");
    return Buffer.concat([body, full]);
  }
}

import { SdpNegotiationError } from "../../sip/errors.js";
import type { MediaSecurity, RemoteSecurity } from "../../sip/sdp.js";
import { formatCryptoAttribute, isUsableCrypto, LocalMasterKeys, OFFERED_SUITES, type SrtpSuite } from "../../sip/srtp/sdes.js";
import { SrtpTransform } from "../../sip/srtp/srtp-transform.js";

/**
 * `off`: plain RTP/AVP, and an RTP/SAVP offer is refused. `offer`: RTP/AVP with `a=crypto` lines,
 * SRTP when the PBX answers with one, else plain. `require`: RTP/SAVP with `a=crypto`, and a PBX
 * that answers or offers no usable key fails the call (or its re-INVITE).
 */
export type SrtpMode = "off" | "offer" | "require";

/**
 * One media stream's SDES negotiation toward the PBX (RFC 4568): our keys (one per suite, from the
 * CSPRNG, kept for the stream's life), the crypto line chosen from the PBX's SDP, and the SRTP
 * transform those two make. The PBX's offer or answer is read the same way (its first usable line
 * wins), so an answer always names what the RTP endpoint runs.
 */
export class SdesNegotiator {
  private readonly localKeys = new LocalMasterKeys();
  private chosen: { tag: number; suite: SrtpSuite; remoteKey: string } | undefined;
  private transform: SrtpTransform | undefined;

  constructor(readonly mode: SrtpMode) {}

  /** The stream's transport and crypto lines in our offer. */
  offer(): MediaSecurity {
    if (this.mode === "off") return { protocol: "RTP/AVP", crypto: [] };
    return {
      protocol: this.mode === "require" ? "RTP/SAVP" : "RTP/AVP",
      crypto: OFFERED_SUITES.map((suite, i) => formatCryptoAttribute({ tag: i + 1, suite, ...this.localKeys.for(suite) })),
    };
  }

  /** The stream's transport and crypto line in our answer to the PBX's offer (read by accept() first). */
  answer(offered: RemoteSecurity): MediaSecurity {
    const protocol = offered.secureProfile ? "RTP/SAVP" : "RTP/AVP";
    if (!this.chosen) return { protocol, crypto: [] };
    return { protocol, crypto: [formatCryptoAttribute({ tag: this.chosen.tag, suite: this.chosen.suite, ...this.localKeys.for(this.chosen.suite) })] };
  }

  /**
   * Reads the PBX's offer or answer for this stream: the SRTP transform to run (the same object
   * while the keys stay the same, a new one when the PBX re-keys or changes suite), or undefined
   * for plain RTP. Throws SdpNegotiationError when the mode and the PBX's SDP do not agree.
   */
  accept(remote: RemoteSecurity): SrtpTransform | undefined {
    if (this.mode === "off") {
      if (remote.secureProfile) throw new SdpNegotiationError(`the PBX wants SRTP (${remote.protocol}) and SIP_SRTP is off`);
      return this.reset();
    }
    const usable = remote.crypto.find(isUsableCrypto);
    if (!usable) {
      if (this.mode === "require") throw new SdpNegotiationError(`SIP_SRTP is require and the PBX's ${remote.protocol} media has no usable a=crypto line`);
      if (remote.secureProfile) throw new SdpNegotiationError(`the PBX's ${remote.protocol} media has no a=crypto line we can use`);
      return this.reset();
    }
    const remoteKey = usable.keys[0]!;
    const fingerprint = `${usable.suite}/${remoteKey.key.toString("base64")}/${remoteKey.salt.toString("base64")}`;
    if (this.transform && this.chosen?.remoteKey === fingerprint) {
      this.chosen.tag = usable.tag;
      return this.transform;
    }
    this.chosen = { tag: usable.tag, suite: usable.suite, remoteKey: fingerprint };
    this.transform = new SrtpTransform({ suite: usable.suite, local: this.localKeys.for(usable.suite), remote: { key: remoteKey.key, salt: remoteKey.salt } });
    return this.transform;
  }

  /** The suite the stream runs now, when it is encrypted. */
  get suite(): SrtpSuite | undefined {
    return this.chosen?.suite;
  }

  private reset(): undefined {
    this.chosen = undefined;
    this.transform = undefined;
    return undefined;
  }

}

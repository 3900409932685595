import { RtcpPayloadSpecificFeedback, type RtcpPacket } from "werift";

export type KeyframeRequestKind = "pli" | "fir";

/** PSFB formats (RFC 4585 §6.3, RFC 5104 §4.3.1). */
const PLI_FMT = 1;
const FIR_FMT = 4;

/**
 * Whether `packet` asks the sender of `mediaSsrc` for a keyframe, and how. Read at the DTLS transport:
 * werift routes a PLI to its receiver instead of `sender.onPictureLossIndication` when the peer also sends
 * on that m-line (werift-notes §2), and never surfaces FIR at all; FullIntraRequest is not even exported,
 * so FIR is recognised by its format number and FCI entries.
 */
export function keyframeRequestFor(packet: RtcpPacket, mediaSsrc: number): KeyframeRequestKind | undefined {
  if (!(packet instanceof RtcpPayloadSpecificFeedback)) return undefined;
  const feedback: { count: number; mediaSsrc: number; fir?: ReadonlyArray<{ ssrc: number }> } = packet.feedback;
  if (feedback.count === PLI_FMT && feedback.mediaSsrc === mediaSsrc) return "pli";
  if (feedback.count === FIR_FMT && (feedback.fir ?? []).some((entry) => entry.ssrc === mediaSsrc)) return "fir";
  return undefined;
}

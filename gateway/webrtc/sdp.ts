/**
 * Pure SDP shaping for the Meta leg. Meta validates what we send strictly (sha-256 only, complete
 * candidates) and sends SDP our stack needs help with; every rule here is one of those facts.
 */

const EOL = "\r\n";

/** Splits an SDP into lines, accepting LF or CRLF, dropping a trailing empty line. */
export function sdpLines(sdp: string): string[] {
  const lines = sdp.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export function joinSdp(lines: string[]): string {
  return lines.join(EOL) + EOL;
}

/** Graph rejects any fingerprint that is not sha-256 (error_subcode 2494010): drop the others. */
export function keepSha256FingerprintsOnly(sdp: string): string {
  return joinSdp(sdpLines(sdp).filter((l) => !l.startsWith("a=fingerprint:") || /^a=fingerprint:sha-256 /i.test(l)));
}

export function dropTrickleOption(sdp: string): string {
  return joinSdp(sdpLines(sdp).filter((l) => l !== "a=ice-options:trickle"));
}

/**
 * Encoding names as Meta's documentation and every browser write them (`opus/48000/2`,
 * `telephone-event`, `H264`). Names are case-insensitive (RFC 4855 §3), but werift writes `OPUS`,
 * and nothing on Meta's side should have to be lenient about what we send.
 */
const CANONICAL_ENCODING_NAMES: ReadonlyMap<string, string> = new Map(
  ["opus", "telephone-event", "H264", "H265", "VP8", "VP9", "AV1", "red", "rtx", "ulpfec"].map((n) => [n.toLowerCase(), n]),
);

export function canonicalEncodingNames(sdp: string): string {
  return joinSdp(
    sdpLines(sdp).map((line) => {
      const m = /^a=rtpmap:(\d+) ([^/\s]+)\/(.*)$/.exec(line);
      const canonical = m ? CANONICAL_ENCODING_NAMES.get(m[2]!.toLowerCase()) : undefined;
      return m && canonical ? `a=rtpmap:${m[1]} ${canonical}/${m[3]}` : line;
    }),
  );
}

/** Every SDP we hand Meta: canonical encoding names, sha-256 fingerprints only, no trickle claim. */
export function sdpForMeta(sdp: string): string {
  return dropTrickleOption(keepSha256FingerprintsOnly(canonicalEncodingNames(sdp)));
}

/**
 * Meta bundles everything in one group. werift builds one ICE/DTLS transport per `a=group:BUNDLE`
 * line and leaves a second one's socket open when the call closes, so a repeated line (or a second
 * group) is dropped: the first group is the one Meta means.
 */
export function keepFirstBundleGroup(sdp: string): string {
  let seen = false;
  return joinSdp(
    sdpLines(sdp).filter((line) => {
      if (!line.startsWith("a=group:BUNDLE")) return true;
      if (seen) return false;
      seen = true;
      return true;
    }),
  );
}

/** What werift is given of Meta's SDP: one BUNDLE group, and complete candidates. */
export function sdpForWerift(sdp: string): string {
  return addEndOfCandidates(keepFirstBundleGroup(sdp));
}

/**
 * Meta's SDP is always complete (no trickle channel exists), so say so: stacks that otherwise wait
 * for more remote candidates start checks at once.
 */
export function addEndOfCandidates(sdp: string): string {
  const lines = sdpLines(sdp);
  const out: string[] = [];
  let inMedia = false;
  let sawEnd = false;
  const flush = (): void => {
    if (inMedia && !sawEnd) out.push("a=end-of-candidates");
  };
  for (const line of lines) {
    if (line.startsWith("m=")) {
      flush();
      inMedia = true;
      sawEnd = false;
    } else if (line === "a=end-of-candidates") {
      sawEnd = true;
    }
    out.push(line);
  }
  flush();
  return joinSdp(out);
}

export interface SdpMediaSummary {
  mid: string | undefined;
  kind: string;
  port: number;
  direction: "sendrecv" | "sendonly" | "recvonly" | "inactive";
  codecs: { pt: number; name: string; clockRate: number }[];
  ssrcs: number[];
}

export interface SdpSummary {
  bundle: string[];
  iceLite: boolean;
  setup: string[];
  fingerprints: string[];
  candidates: number;
  media: SdpMediaSummary[];
}

/** A read-only digest of an SDP: enough to validate what Meta sent and to log it without the SDP. */
export function summarizeSdp(sdp: string): SdpSummary {
  const summary: SdpSummary = { bundle: [], iceLite: false, setup: [], fingerprints: [], candidates: 0, media: [] };
  let current: SdpMediaSummary | undefined;
  for (const line of sdpLines(sdp)) {
    if (line.startsWith("m=")) {
      const [kind = "", port = "0"] = line.slice(2).split(" ");
      current = { mid: undefined, kind, port: Number(port), direction: "sendrecv", codecs: [], ssrcs: [] };
      summary.media.push(current);
    } else if (line.startsWith("a=group:BUNDLE")) {
      summary.bundle = line.slice("a=group:BUNDLE".length).trim().split(/\s+/).filter(Boolean);
    } else if (line === "a=ice-lite") {
      summary.iceLite = true;
    } else if (line.startsWith("a=setup:")) {
      summary.setup.push(line.slice(8));
    } else if (line.startsWith("a=fingerprint:")) {
      summary.fingerprints.push(line.slice(14).split(" ")[0]!.toLowerCase());
    } else if (line.startsWith("a=candidate:")) {
      summary.candidates++;
    } else if (current) {
      if (line.startsWith("a=mid:")) current.mid = line.slice(6);
      else if (/^a=(sendrecv|sendonly|recvonly|inactive)$/.test(line)) {
        current.direction = line.slice(2) as SdpMediaSummary["direction"];
      } else if (line.startsWith("a=rtpmap:")) {
        const m = /^a=rtpmap:(\d+) ([^/]+)\/(\d+)/.exec(line);
        if (m) current.codecs.push({ pt: Number(m[1]), name: m[2]!, clockRate: Number(m[3]) });
      } else if (line.startsWith("a=ssrc:")) {
        const ssrc = Number(line.slice(7).split(" ")[0]);
        if (!current.ssrcs.includes(ssrc)) current.ssrcs.push(ssrc);
      }
    }
  }
  return summary;
}

/** Why an SDP from Meta cannot be used, or undefined when it can. */
export function validateRemoteSdp(sdp: string, type: "offer" | "answer"): string | undefined {
  if (!sdp.startsWith("v=0")) return "does not start with v=0";
  const s = summarizeSdp(sdp);
  if (s.media.length === 0) return "has no m= line";
  if (!s.media.some((m) => m.kind === "audio" && m.port !== 0)) return "has no active audio m= line";
  if (s.fingerprints.length === 0) return "has no DTLS fingerprint";
  if (!/a=ice-ufrag:/.test(sdp) || !/a=ice-pwd:/.test(sdp)) return "has no ICE credentials";
  if (type === "answer" && s.setup.some((r) => r === "actpass")) return "answers with a=setup:actpass";
  return undefined;
}

/**
 * Reorders the formats of each video m-line by `prefer(offered)` (payload types, best first),
 * leaving the rest in place. werift answers with the first offered codec it supports (for H.264
 * regardless of packetization mode and profile), so the order we apply is the choice we make.
 */
export function reorderVideoFormats(
  sdp: string,
  prefer: (offered: { payloadType: number; encodingName: string; fmtp: string | undefined }[]) => number[],
): string {
  const lines = sdpLines(sdp);
  const sections: number[] = [];
  lines.forEach((l, i) => {
    if (l.startsWith("m=")) sections.push(i);
  });
  sections.push(lines.length);
  for (let k = 0; k + 1 < sections.length; k++) {
    const start = sections[k]!;
    const end = sections[k + 1]!;
    const m = /^m=video (\d+) (\S+) (.*)$/.exec(lines[start]!);
    if (!m || m[1] === "0") continue;
    const formats = m[3]!.split(" ").map(Number);
    const body = lines.slice(start + 1, end);
    const offered = formats.map((pt) => ({
      payloadType: pt,
      encodingName: (new RegExp(`^a=rtpmap:${pt} ([^/]+)/`).exec(body.find((l) => l.startsWith(`a=rtpmap:${pt} `)) ?? "")?.[1]) ?? "",
      fmtp: body.find((l) => l.startsWith(`a=fmtp:${pt} `))?.slice(`a=fmtp:${pt} `.length),
    }));
    const best = prefer(offered).filter((pt) => formats.includes(pt));
    const order = [...best, ...formats.filter((pt) => !best.includes(pt))];
    lines[start] = `m=video ${m[1]} ${m[2]} ${order.join(" ")}`;
  }
  return joinSdp(lines);
}

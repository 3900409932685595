import type { PeerConfig } from "werift";

export const LOOPBACK_HOST = "127.0.0.1";

/**
 * werift options that keep every ICE packet on 127.0.0.1 and never stall gathering.
 *
 * What werift 0.25.2 does (lib/ice/src/ice.js, lib/common/src/network.js):
 * - Without a `stun:` URL, `Connection.stunServer` falls back to DEFAULT_STUN_SERVER
 *   (stun.l.google.com:19302), also for `iceServers: []` (issue #691). A full agent then
 *   resolves that name and sends a binding request from every IPv4 host socket, and
 *   setLocalDescription waits up to `iceStunGatherTimeout` (default 5 s) for the answer.
 *   `iceStunGatherTimeout: 0` only stops the wait: the DNS lookup and the request still go out.
 *   Only an explicit loopback `stun:` URL keeps the query local.
 * - An ice-lite agent (`iceLite: true`) skips server-reflexive gathering altogether
 *   (`gatherIceLite` in getCandidatePromises), so the consumer never sends a STUN request
 *   of its own; the loopback URL below is a second guard, not the mechanism.
 * - Host addresses come from os.networkInterfaces() minus internal (loopback) interfaces, so
 *   127.0.0.1 is never gathered unless listed. `iceUseIpv4/6: false` empties that list,
 *   `iceAdditionalHostAddresses` adds 127.0.0.1 back, and `iceInterfaceAddresses.udp4` binds
 *   the UDP socket to 127.0.0.1 instead of 0.0.0.0.
 * - `iceFilterCandidatePair` drops pairs towards non-loopback remote candidates, so a peer
 *   that advertises LAN addresses never receives checks or media from us elsewhere;
 *   `iceFilterStunResponse` ignores binding requests that did not come from loopback.
 */
export function loopbackIceConfig(stunUrl: string): Partial<PeerConfig> {
  return {
    iceServers: [{ urls: stunUrl }],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [LOOPBACK_HOST],
    iceInterfaceAddresses: { udp4: LOOPBACK_HOST },
    iceUseTcp: false,
    iceTransportPolicy: "all",
    // Bounds the only remaining wait (a full agent querying the loopback STUN server).
    iceStunGatherTimeout: 1,
    iceFilterCandidatePair: (pair) => pair.remoteCandidate.host === LOOPBACK_HOST,
    iceFilterStunResponse: (_message, addr) => addr[0] === LOOPBACK_HOST,
  };
}

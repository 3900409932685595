import fc from "fast-check";

/**
 * fast-check arbitraries for everything the suite throws at the gateway. Inputs are plain data
 * (a template name and a list of mutations) rendered into bytes at send time, so a failing input
 * shrinks to a short list of mutations and prints as something a person can read and replay.
 */

// ---- hostile values ---------------------------------------------------------------------------

/** Characters a long string is made of: ASCII, escapes JSON must write, a multi-byte letter, an emoji, NUL, percent. */
const HUGE_FILL = ["a", "\u00e9", "\u{1F4A5}", "\u0000", '"', "\\", "%", "\r\n", "0"] as const;

export interface HugeString {
  huge: (typeof HUGE_FILL)[number];
  length: number;
}

export function hugeStringArb(maxLength: number): fc.Arbitrary<HugeString> {
  return fc.record({ huge: fc.constantFrom(...HUGE_FILL), length: fc.integer({ min: 1_000, max: maxLength }) });
}

export function renderHuge(h: HugeString): string {
  return h.huge.repeat(h.length);
}

/** Nesting written as text at render time: building it as an object would overflow our own stack too. */
export interface DeepNest {
  deep: "array" | "object" | "string-json";
  depth: number;
}

export function deepNestArb(maxDepth: number): fc.Arbitrary<DeepNest> {
  return fc.record({ deep: fc.constantFrom("array", "object", "string-json"), depth: fc.integer({ min: 20, max: maxDepth }) });
}

export function renderDeep(d: DeepNest): string {
  if (d.deep === "array") return "[".repeat(d.depth) + "1" + "]".repeat(d.depth);
  if (d.deep === "object") return '{"a":'.repeat(d.depth) + "1" + "}".repeat(d.depth);
  // A JSON document inside a string (media_update's session may be one).
  return JSON.stringify("[".repeat(d.depth) + "]".repeat(d.depth));
}

const weirdNumberArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e21, 1e308, -1e308, 1.5, 5e-324, 4294967295, 65536, 1e9),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

const idLikeArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("", "c_", "c_0", "0", "-1", "1e5", "00000", " 123", "123 ", "１２３４５", "c_💥", "c_\u0000", "null", "undefined", "__proto__", "constructor"),
  fc.stringMatching(/^c_[A-Za-z0-9_-]{1,40}$/),
  fc.stringMatching(/^[0-9]{1,40}$/),
);

/** A scalar JSON value meant to break whatever reads it. */
export const hostileScalarArb: fc.Arbitrary<string | number | boolean | null> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  weirdNumberArb,
  idLikeArb,
  fc.string({ unit: "grapheme", maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: "binary-ascii", maxLength: 30 }),
);

export type HostileValue = { value: unknown } | HugeString | DeepNest;

export function hostileValueArb(o: { maxHuge: number; maxDepth: number }): fc.Arbitrary<HostileValue> {
  return fc.oneof(
    { weight: 6, arbitrary: hostileScalarArb.map((value) => ({ value })) },
    { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value) => ({ value })) },
    { weight: 1, arbitrary: fc.constantFrom({ value: {} }, { value: [] }, { value: [[]] }, { value: { "": null } }) },
    { weight: 1, arbitrary: hugeStringArb(o.maxHuge) },
    { weight: 1, arbitrary: deepNestArb(o.maxDepth) },
  );
}

// ---- JSON tree mutations ------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One structural change to a JSON document; `at` picks the node among all nodes, modulo their count. */
export type JsonOp =
  | { op: "set"; at: number; value: HostileValue }
  | { op: "delete"; at: number }
  | { op: "rename"; at: number; key: string }
  | { op: "insert"; at: number; key: string; value: HostileValue }
  | { op: "duplicate"; at: number; times: number }
  | { op: "wrap"; at: number; as: "array" | "object" | "string" };

const keyArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "id",
    "call_id",
    "event",
    "entry",
    "calls",
    "object",
    "session",
    "sdp",
    "sdp_type",
    "status",
    "from",
    "to",
    "timestamp",
    "version",
    "call_permission_reply",
    "messaging",
    "",
    "ID",
    "Event",
  ),
  fc.string({ unit: "grapheme", maxLength: 12 }),
);

export function jsonOpArb(o: { maxHuge: number; maxDepth: number }): fc.Arbitrary<JsonOp> {
  const at = fc.nat({ max: 10_000 });
  const value = hostileValueArb(o);
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant("set" as const), at, value }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("delete" as const), at }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("rename" as const), at, key: keyArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("insert" as const), at, key: keyArb, value }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicate" as const), at, times: fc.integer({ min: 1, max: 200 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("wrap" as const), at, as: fc.constantFrom("array" as const, "object" as const, "string" as const) }) },
  );
}

interface NodeRef {
  parent: Json[] | { [key: string]: Json } | undefined;
  key: string | number | undefined;
  node: Json;
}

function nodesOf(root: Json): NodeRef[] {
  const out: NodeRef[] = [{ parent: undefined, key: undefined, node: root }];
  const walk = (node: Json): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        out.push({ parent: node, key: i, node: child });
        walk(child);
      });
    } else if (node !== null && typeof node === "object") {
      for (const k of Object.keys(node)) {
        out.push({ parent: node, key: k, node: node[k]! });
        walk(node[k]!);
      }
    }
  };
  walk(root);
  return out;
}

/** Hostile values that only exist as text get a marker here and their text in `expandMarkers`. */
function placeValue(v: HostileValue, markers: string[]): Json {
  if ("value" in v) return v.value as Json;
  markers.push("huge" in v ? JSON.stringify(renderHuge(v)) : renderDeep(v));
  return `\u0001MARK${markers.length - 1}\u0001`;
}

function setChild(parent: NonNullable<NodeRef["parent"]>, key: string | number, value: Json): void {
  if (Array.isArray(parent)) parent[key as number] = value;
  else Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Applies the operations to a copy of `doc` and serializes it; `\u0001MARKn\u0001` stand for text-only values. */
export function mutateJson(doc: unknown, ops: readonly JsonOp[]): string {
  const markers: string[] = [];
  let root = JSON.parse(JSON.stringify(doc)) as Json;
  for (const op of ops) {
    const nodes = nodesOf(root);
    const ref = nodes[op.at % nodes.length]!;
    switch (op.op) {
      case "set":
        if (!ref.parent) root = placeValue(op.value, markers);
        else setChild(ref.parent, ref.key!, placeValue(op.value, markers));
        break;
      case "delete":
        if (!ref.parent) root = null;
        else if (Array.isArray(ref.parent)) ref.parent.splice(ref.key as number, 1);
        else delete ref.parent[ref.key as string];
        break;
      case "rename":
        if (ref.parent && !Array.isArray(ref.parent)) {
          const v = ref.parent[ref.key as string]!;
          delete ref.parent[ref.key as string];
          setChild(ref.parent, op.key, v);
        }
        break;
      case "insert":
        if (Array.isArray(ref.node)) ref.node.push(placeValue(op.value, markers));
        else if (ref.node !== null && typeof ref.node === "object") setChild(ref.node, op.key, placeValue(op.value, markers));
        break;
      case "duplicate":
        if (Array.isArray(ref.parent)) {
          const copies = Array.from({ length: op.times }, () => JSON.parse(JSON.stringify(ref.node)) as Json);
          ref.parent.splice((ref.key as number) + 1, 0, ...copies);
        }
        break;
      case "wrap": {
        const wrapped: Json = op.as === "array" ? [ref.node] : op.as === "object" ? { x: ref.node } : JSON.stringify(ref.node);
        if (!ref.parent) root = wrapped;
        else setChild(ref.parent, ref.key!, wrapped);
        break;
      }
    }
  }
  let text = JSON.stringify(root) ?? "null";
  text = text.replace(/"\\u0001MARK(\d+)\\u0001"/g, (_m, i: string) => markers[Number(i)] ?? "null");
  return text;
}

/** Byte-level damage after serialization: what a broken proxy or a truncated delivery does. */
export type RawOp =
  | { raw: "truncate"; at: number }
  | { raw: "flip"; at: number; byte: number }
  | { raw: "insert"; at: number; bytes: number[] }
  | { raw: "append"; bytes: number[] }
  | { raw: "duplicate-key"; key: string };

export const rawOpArb: fc.Arbitrary<RawOp> = fc.oneof(
  fc.record({ raw: fc.constant("truncate" as const), at: fc.nat({ max: 100_000 }) }),
  fc.record({ raw: fc.constant("flip" as const), at: fc.nat({ max: 100_000 }), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ raw: fc.constant("insert" as const), at: fc.nat({ max: 100_000 }), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }),
  fc.record({ raw: fc.constant("append" as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }) }),
  fc.record({ raw: fc.constant("duplicate-key" as const), key: fc.constantFrom("object", "id", "event", "entry", "calls", "session") }),
);

export function applyRaw(bytes: Buffer, ops: readonly RawOp[]): Buffer {
  let b = bytes;
  for (const op of ops) {
    const at = b.length === 0 ? 0 : ("at" in op ? op.at % (b.length + 1) : 0);
    switch (op.raw) {
      case "truncate":
        b = b.subarray(0, at);
        break;
      case "flip":
        if (b.length > 0) {
          b = Buffer.from(b);
          b[Math.min(at, b.length - 1)] = op.byte;
        }
        break;
      case "insert":
        b = Buffer.concat([b.subarray(0, at), Buffer.from(op.bytes), b.subarray(at)]);
        break;
      case "append":
        b = Buffer.concat([b, Buffer.from(op.bytes)]);
        break;
      case "duplicate-key": {
        // A second value for the same key: JSON.parse keeps the last, other readers the first.
        const text = b.toString("latin1");
        const i = text.indexOf(`"${op.key}":`);
        if (i >= 0) b = Buffer.from(`${text.slice(0, i)}"${op.key}":"dup",${text.slice(i)}`, "latin1");
        break;
      }
    }
  }
  return b;
}

// ---- webhooks -----------------------------------------------------------------------------------

export const WEBHOOK_TEMPLATES = [
  "connect-user",
  "connect-business",
  "call-status",
  "media-update",
  "media-update-string-session",
  "terminate",
  "permission-messaging",
  "permission-entry",
  "batch",
] as const;
export type WebhookTemplate = (typeof WEBHOOK_TEMPLATES)[number];

/** How a delivery is signed: only `valid` carries the app secret's HMAC of these exact bytes. */
export const SIGNATURE_MODES = ["valid", "missing", "wrong-secret", "other-body", "garbage", "sha1-only", "empty", "truncated"] as const;
export type SignatureMode = (typeof SIGNATURE_MODES)[number];

export interface WebhookInput {
  template: WebhookTemplate;
  ops: JsonOp[];
  raw: RawOp[];
  signature: SignatureMode;
  contentType: string;
  /** The SDP of media_update templates: a real one from a live call, mutated. */
  sdp: SdpInput;
}

export function webhookInputArb(o: { signed: boolean; maxHuge: number; maxDepth: number }): fc.Arbitrary<WebhookInput> {
  const signature: fc.Arbitrary<SignatureMode> = o.signed ? fc.constant("valid") : fc.constantFrom(...SIGNATURE_MODES.filter((s) => s !== "valid"));
  return fc.record({
    template: fc.constantFrom(...WEBHOOK_TEMPLATES),
    ops: fc.array(jsonOpArb(o), { maxLength: 4 }),
    raw: fc.oneof({ weight: 4, arbitrary: fc.constant([] as RawOp[]) }, { weight: 1, arbitrary: fc.array(rawOpArb, { minLength: 1, maxLength: 2 }) }),
    signature,
    contentType: fc.constantFrom("application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin1"),
    sdp: sdpInputArb("meta"),
  });
}

/** The real ids and SDP a webhook is built around; fresh per input so Graph requests can be traced to it. */
export interface WebhookContext {
  pageId: string;
  callId: string;
  psid: string;
  sdp: string;
  nowMs: number;
}

/** The template as Meta would send it, before mutation. */
export function webhookTemplate(t: WebhookTemplate, c: WebhookContext, sdp: string): unknown {
  const s = Math.floor(c.nowMs / 1000);
  const entry = (calls: unknown[]): unknown => ({ object: "page", entry: [{ id: c.pageId, time: c.nowMs, calls }] });
  const connect = (direction: string): unknown => ({
    id: c.callId,
    to: direction === "user_initiated" ? c.pageId : c.psid,
    from: direction === "user_initiated" ? c.psid : c.pageId,
    event: "connect",
    timestamp: s,
    call_direction: direction,
  });
  const session = { version: 1, sdp_renegotiation: { sdp_type: "offer", sdp } };
  const reply = { response: "approve", expiration_timestamp: s + 7 * 86_400 };
  switch (t) {
    case "connect-user":
      return entry([connect("user_initiated")]);
    case "connect-business":
      return entry([connect("business_initiated")]);
    case "call-status":
      return entry([{ id: c.callId, event: "call_status", timestamp: s, recipient_id: c.psid, call_status: "ringing" }]);
    case "media-update":
      return entry([{ id: c.callId, event: "media_update", timestamp: s, session }]);
    case "media-update-string-session":
      return entry([{ id: c.callId, event: "media_update", timestamp: s, session: JSON.stringify(session) }]);
    case "terminate":
      return entry([{ id: c.callId, event: "terminate", timestamp: s, status: "Completed", start_time: s - 30, end_time: s, duration: 25 }]);
    case "permission-messaging":
      return {
        object: "page",
        entry: [{ id: c.pageId, time: c.nowMs, messaging: [{ sender: { id: c.psid }, recipient: { id: c.pageId }, timestamp: c.nowMs, call_permission_reply: reply }] }],
      };
    case "permission-entry":
      return { object: "page", entry: [{ id: c.pageId, time: c.nowMs, sender: { id: c.psid }, recipient: { id: c.pageId }, call_permission_reply: reply }] };
    case "batch":
      return {
        object: "page",
        entry: [
          { id: c.pageId, time: c.nowMs, calls: [connect("business_initiated"), { id: c.callId, event: "call_status", timestamp: s, recipient_id: c.psid, call_status: "accepted" }] },
          { id: c.pageId, time: c.nowMs, calls: [{ id: c.callId, event: "terminate", timestamp: s, status: "Failed" }] },
        ],
      };
  }
}

export function renderWebhook(input: WebhookInput, c: WebhookContext): Buffer {
  const sdp = renderSdp(input.sdp, c.sdp);
  const text = mutateJson(webhookTemplate(input.template, c, sdp), input.ops);
  return applyRaw(Buffer.from(text, "utf8"), input.raw);
}

// ---- SDP ----------------------------------------------------------------------------------------

/** One change to an SDP, line-aware: `at` picks a line (or an m-line) modulo their count. */
export type SdpOp =
  | { sdp: "delete-line"; at: number }
  | { sdp: "duplicate-line"; at: number; times: number }
  | { sdp: "set-value"; at: number; value: string }
  | { sdp: "m-port"; at: number; port: string }
  | { sdp: "m-formats"; at: number; formats: string }
  | { sdp: "m-proto"; at: number; proto: string }
  | { sdp: "add-line"; at: number; line: string }
  | { sdp: "many-m-lines"; count: number; kind: string }
  | { sdp: "connection"; value: string }
  | { sdp: "line-ends"; style: "lf" | "cr" | "mixed" | "none" }
  | { sdp: "truncate"; at: number }
  | { sdp: "strip-m-lines" };

/** Bodies that are not SDP at all: whatever reads them must refuse, not guess. */
export type GarbageSdp =
  | { garbage: "empty" }
  | { garbage: "v0-only" }
  | { garbage: "binary"; bytes: number[] }
  | { garbage: "json"; value: unknown }
  | { garbage: "prose"; text: string }
  | { garbage: "no-m-line" }
  | { garbage: "port-abc" }
  | { garbage: "huge"; h: HugeString };

export type SdpInput = { base: "real"; ops: SdpOp[] } | GarbageSdp;

const sdpAttributeLines = [
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:111 opus/48000/2",
  "a=rtpmap:96 H264/90000",
  "a=rtpmap:abc",
  "a=rtpmap:999999999999 X/0",
  "a=rtpmap:101 telephone-event/0",
  "a=fmtp:96 profile-level-id=zzzzzz;packetization-mode=9",
  "a=fmtp:111 " + "x=1;".repeat(400),
  "a=ptime:0",
  "a=ptime:-20",
  "a=maxptime:99999999999",
  "a=sendrecv",
  "a=inactive",
  "a=recvonly",
  "a=mid:",
  "a=mid:0",
  "a=group:BUNDLE 0 1 2 3 4 5 6 7 8 9",
  "a=group:BUNDLE zz",
  "a=ice-ufrag:",
  "a=ice-pwd:x",
  "a=fingerprint:sha-1 00:11",
  "a=fingerprint:sha-256 ZZ",
  "a=fingerprint:md5 00",
  "a=setup:holdconn",
  "a=setup:",
  "a=candidate:1 1 udp 2130706431 127.0.0.1 99999 typ host",
  "a=candidate:1 1 udp x 127.0.0.1 5000 typ relay",
  "a=candidate:",
  "a=candidate:1 1 tcp 1 ::1 1 typ host tcptype passive",
  "a=ssrc:4294967296 cname:x",
  "a=ssrc:-1 msid:a b",
  "a=ssrc-group:FID 1",
  "a=msid:- D3F4U1T_F8_TR4CK",
  "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
  "a=extmap:15 x",
  "a=rtcp-fb:* nack",
  "a=rtcp:0",
  "a=rtcp:70000 IN IP4 127.0.0.1",
  "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
  "b=AS:-1",
  "c=IN IP6 ::1",
  "c=IN IP4 300.1.1.1",
  "c=IN IP4 localhost",
  "t=abc",
  "o=- x y IN IP4",
  "v=1",
  "z=",
  "m=",
  "m=audio",
  "m=image 9 udptl t38",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
];

export function sdpOpArb(): fc.Arbitrary<SdpOp> {
  const at = fc.nat({ max: 1000 });
  const text = fc.oneof(
    fc.string({ unit: "grapheme-ascii", maxLength: 40 }),
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.string({ unit: "binary-ascii", maxLength: 20 }),
    fc.constantFrom(...sdpAttributeLines),
  );
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ sdp: fc.constant("delete-line" as const), at }) },
    { weight: 1, arbitrary: fc.record({ sdp: fc.constant("duplicate-line" as const), at, times: fc.integer({ min: 1, max: 50 }) }) },
    { weight: 3, arbitrary: fc.record({ sdp: fc.constant("set-value" as const), at, value: text }) },
    {
      weight: 2,
      arbitrary: fc.record({
        sdp: fc.constant("m-port" as const),
        at,
        port: fc.oneof(fc.constantFrom("0", "-1", "65536", "99999999999", "abc", "", "9/2", "5004/70000", "1e3", " 5000"), fc.nat({ max: 70_000 }).map(String)),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        sdp: fc.constant("m-formats" as const),
        at,
        formats: fc.oneof(
          fc.constantFrom("", "abc", "-1", "128", "999999", "0 0 0 0", "96", "8", "18", "111 111"),
          fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 600 }).map((a) => a.join(" ")),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ sdp: fc.constant("m-proto" as const), at, proto: fc.constantFrom("RTP/AVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF", "TCP/RTP/AVP", "RTP/AVPF", "", "udp", "x".repeat(300)) }) },
    { weight: 3, arbitrary: fc.record({ sdp: fc.constant("add-line" as const), at, line: text }) },
    { weight: 1, arbitrary: fc.record({ sdp: fc.constant("many-m-lines" as const), count: fc.integer({ min: 2, max: 120 }), kind: fc.constantFrom("audio", "video", "application", "text") }) },
    { weight: 1, arbitrary: fc.record({ sdp: fc.constant("connection" as const), value: fc.constantFrom("IN IP6 ::1", "IN IP4 0.0.0.0", "IN IP4 300.1.1.1", "IN IP4", "", "IN IP4 127.0.0.1/127/3", "XX YY ZZ") }) },
    { weight: 1, arbitrary: fc.record({ sdp: fc.constant("line-ends" as const), style: fc.constantFrom("lf" as const, "cr" as const, "mixed" as const, "none" as const) }) },
    { weight: 1, arbitrary: fc.record({ sdp: fc.constant("truncate" as const), at }) },
    { weight: 1, arbitrary: fc.constant({ sdp: "strip-m-lines" as const }) },
  );
}

export function garbageSdpArb(): fc.Arbitrary<GarbageSdp> {
  return fc.oneof(
    fc.constant({ garbage: "empty" as const }),
    fc.constant({ garbage: "v0-only" as const }),
    fc.record({ garbage: fc.constant("binary" as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 400 }) }),
    fc.record({ garbage: fc.constant("json" as const), value: fc.jsonValue({ maxDepth: 3 }) }),
    fc.record({ garbage: fc.constant("prose" as const), text: fc.lorem({ maxCount: 12 }) }),
    fc.constant({ garbage: "no-m-line" as const }),
    fc.constant({ garbage: "port-abc" as const }),
    fc.record({ garbage: fc.constant("huge" as const), h: hugeStringArb(200_000) }),
  );
}

/** `side` only weights the mix; both sides get both kinds. */
export function sdpInputArb(_side: "meta" | "pbx"): fc.Arbitrary<SdpInput> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ base: fc.constant("real" as const), ops: fc.array(sdpOpArb(), { minLength: 0, maxLength: 4 }) }) },
    { weight: 1, arbitrary: garbageSdpArb() },
  );
}

export function isGarbageSdp(s: SdpInput): s is GarbageSdp {
  return "garbage" in s;
}

/** Renders an SDP input around a real SDP (`base`, as it came from Meta or a PBX). */
export function renderSdp(input: SdpInput, base: string): string {
  if ("garbage" in input) {
    switch (input.garbage) {
      case "empty":
        return "";
      case "v0-only":
        return "v=0\r\n";
      case "binary":
        return Buffer.from(input.bytes).toString("latin1");
      case "json":
        return JSON.stringify(input.value) ?? "null";
      case "prose":
        return input.text;
      case "no-m-line":
        return `${base.split(/\r?\n/).filter((l) => l && !l.startsWith("m=")).join("\r\n")}\r\n`;
      case "port-abc":
        return base.replace(/^m=(\w+) \d+/gm, "m=$1 abc");
      case "huge":
        return `v=0\r\n${renderHuge(input.h)}\r\n`;
    }
  }
  let lines = base.split(/\r?\n/).filter((l) => l.length > 0);
  let ends = "\r\n";
  const mIndexes = (): number[] => lines.flatMap((l, i) => (l.startsWith("m=") ? [i] : []));
  const pickM = (at: number): number | undefined => {
    const ms = mIndexes();
    return ms.length === 0 ? undefined : ms[at % ms.length];
  };
  const mField = (at: number, field: number, value: string): void => {
    const i = pickM(at);
    if (i === undefined) return;
    const parts = lines[i]!.split(" ");
    if (field === 3) parts.splice(3, parts.length - 3, value);
    else parts[field] = value;
    lines[i] = parts.join(" ");
  };
  for (const op of input.ops) {
    const at = lines.length === 0 ? 0 : ("at" in op ? op.at % lines.length : 0);
    switch (op.sdp) {
      case "delete-line":
        lines.splice(at, 1);
        break;
      case "duplicate-line":
        if (lines.length > 0) lines.splice(at, 0, ...Array.from({ length: op.times }, () => lines[at]!));
        break;
      case "set-value":
        if (lines.length > 0) lines[at] = `${lines[at]!.slice(0, 2)}${op.value}`;
        break;
      case "m-port":
        mField(op.at, 1, op.port);
        break;
      case "m-formats":
        mField(op.at, 3, op.formats);
        break;
      case "m-proto":
        mField(op.at, 2, op.proto);
        break;
      case "add-line":
        lines.splice(at, 0, op.line);
        break;
      case "many-m-lines":
        for (let i = 0; i < op.count; i++) lines.push(`m=${op.kind} ${10_000 + 2 * i} RTP/AVP 0`, "a=sendrecv");
        break;
      case "connection":
        lines = lines.map((l) => (l.startsWith("c=") ? `c=${op.value}` : l));
        break;
      case "line-ends":
        ends = op.style === "lf" ? "\n" : op.style === "cr" ? "\r" : op.style === "none" ? "" : "\r\n";
        if (op.style === "mixed") lines = lines.map((l, i) => (i % 2 === 0 ? `${l}\n` : l));
        break;
      case "truncate": {
        const text = lines.join("\r\n");
        lines = text.slice(0, op.at % (text.length + 1)).split("\r\n");
        break;
      }
      case "strip-m-lines":
        lines = lines.filter((l) => !l.startsWith("m="));
        break;
    }
  }
  return lines.join(ends) + ends;
}

// ---- SIP ----------------------------------------------------------------------------------------

export const SIP_TEMPLATES = ["INVITE", "OPTIONS", "BYE", "INFO", "CANCEL", "ACK", "REGISTER", "MESSAGE", "UPDATE", "response"] as const;
export type SipTemplate = (typeof SIP_TEMPLATES)[number];

export const DIALOG_TEMPLATES = ["re-INVITE", "INFO-dtmf", "INFO-fast-update", "BYE", "OPTIONS", "UPDATE"] as const;
export type DialogTemplate = (typeof DIALOG_TEMPLATES)[number];

export type SipOp =
  | { sip: "delete-header"; at: number }
  | { sip: "duplicate-header"; at: number; times: number }
  | { sip: "set-header"; at: number; value: string }
  | { sip: "rename-header"; at: number; name: string }
  | { sip: "add-header"; name: string; value: string }
  | { sip: "many-headers"; count: number }
  | { sip: "huge-header"; h: HugeString }
  | { sip: "fold-header"; at: number }
  | { sip: "method"; method: string }
  | { sip: "request-uri"; uri: string }
  | { sip: "version"; version: string }
  | { sip: "content-length"; value: string }
  | { sip: "body"; body: string };

/** Damage to the framing of the serialized message. `breaks`: no reading of it may lead anywhere. */
export type SipFraming =
  | { frame: "none" }
  | { frame: "no-blank-line" }
  | { frame: "lf-only" }
  | { frame: "nul"; at: number }
  | { frame: "truncate"; at: number }
  | { frame: "leading-crlf"; count: number }
  | { frame: "pipelined"; second: "same" | "garbage" }
  | { frame: "chunks"; sizes: number[] };

const headerNameArb = fc.oneof(
  fc.constantFrom(
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Contact",
    "m",
    "Content-Length",
    "l",
    "Content-Type",
    "c",
    "Max-Forwards",
    "Record-Route",
    "Route",
    "Authorization",
    "Proxy-Authorization",
    "Expires",
    "Allow",
    "Supported",
    "Require",
    "Session-Expires",
    "X-Meta-PSID",
    "via",
    "VIA",
    " Via",
    "Via ",
    "",
    "Bad Header",
  ),
  fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 20 }),
);

const headerValueArb = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "<>",
    "<sip:>",
    "<sip:a@b",
    "sip:a@b>",
    ";tag=",
    "SIP/2.0/UDP",
    "SIP/2.0/UDP 127.0.0.1:0;branch=",
    "SIP/2.0/XYZ 127.0.0.1:5060;branch=z9hG4bKx",
    "SIP/2.0/UDP [::1]:5060;branch=z9hG4bKx;rport=abc",
    "SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKx",
    "1",
    "-1",
    "99999999999999999999 INVITE",
    "1 BYE",
    "abc INVITE",
    "4294967296 INVITE",
    "0 INVITE",
    "application/sdp",
    "multipart/mixed;boundary=x",
    "text/plain",
    "Digest username=\"a\", realm=\"b\", nonce=\"\", uri=\"sip:x\", response=\"00\"",
    "Digest " + "x=\"y\",".repeat(500),
    "\"\\\"\" <sip:a@b>;tag=1",
    "%00",
    "\u00ff\u00fe",
  ),
  fc.string({ unit: "grapheme-ascii", maxLength: 60 }),
  fc.string({ unit: "binary-ascii", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
);

const requestUriArb = fc.oneof(
  fc.constantFrom(
    "sip:%E0%A4%A@127.0.0.1",
    "sip:%ZZ@127.0.0.1",
    "sip:%00@127.0.0.1",
    "sip:@127.0.0.1",
    "sip:127.0.0.1",
    "sips:12345678901234@127.0.0.1",
    "tel:+12345678901",
    "sip:12345678901234@",
    "sip:-12345678901234@127.0.0.1",
    "sip:1234@127.0.0.1",
    "sip:1e20@127.0.0.1",
    "sip:０１２３４５６７８@127.0.0.1",
    "sip:" + "9".repeat(200) + "@127.0.0.1",
    "sip:" + "9".repeat(5000) + "@127.0.0.1",
    "sip:12345678901234@127.0.0.1;transport=xyz",
    "sip:12345678901234@127.0.0.1:99999",
    "sip:a b@127.0.0.1",
    "<sip:1@2>",
    "*",
    "",
    "http://127.0.0.1/",
  ),
  fc.string({ unit: "grapheme-ascii", maxLength: 40 }).map((s) => `sip:${s}@127.0.0.1`),
  fc.string({ unit: "grapheme", maxLength: 10 }).map((s) => `sip:${encodeURIComponent(s)}@127.0.0.1`),
);

export function sipOpArb(o: { maxHuge: number }): fc.Arbitrary<SipOp> {
  const at = fc.nat({ max: 1000 });
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ sip: fc.constant("delete-header" as const), at }) },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("duplicate-header" as const), at, times: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 4, arbitrary: fc.record({ sip: fc.constant("set-header" as const), at, value: headerValueArb }) },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("rename-header" as const), at, name: headerNameArb }) },
    { weight: 2, arbitrary: fc.record({ sip: fc.constant("add-header" as const), name: headerNameArb, value: headerValueArb }) },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("many-headers" as const), count: fc.integer({ min: 50, max: 400 }) }) },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("huge-header" as const), h: hugeStringArb(o.maxHuge) }) },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("fold-header" as const), at }) },
    {
      weight: 1,
      arbitrary: fc.record({
        sip: fc.constant("method" as const),
        method: fc.oneof(fc.constantFrom("INVITE", "invite", "BYE", "PRACK", "REFER", "NOTIFY", "SUBSCRIBE", "PUBLISH", "FOO", "", "INV ITE", "INVITE\u0000"), fc.stringMatching(/^[A-Z]{1,12}$/)),
      }),
    },
    { weight: 3, arbitrary: fc.record({ sip: fc.constant("request-uri" as const), uri: requestUriArb }) },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("version" as const), version: fc.constantFrom("SIP/2.0", "SIP/1.0", "SIP/3.0", "HTTP/1.1", "SIP/2.0 ", "sip/2.0", "") }) },
    {
      weight: 2,
      arbitrary: fc.record({
        sip: fc.constant("content-length" as const),
        value: fc.oneof(fc.constantFrom("-1", "abc", "", "1e3", "99999999999999999999", "0x10", " 5", "5 5", "4294967296"), fc.integer({ min: 0, max: 100_000 }).map(String)),
      }),
    },
    { weight: 1, arbitrary: fc.record({ sip: fc.constant("body" as const), body: fc.string({ unit: "binary-ascii", maxLength: 300 }) }) },
  );
}

export function sipFramingArb(o: { tcp: boolean }): fc.Arbitrary<SipFraming> {
  const base: fc.Arbitrary<SipFraming>[] = [
    fc.constant({ frame: "no-blank-line" as const }),
    fc.constant({ frame: "lf-only" as const }),
    fc.record({ frame: fc.constant("nul" as const), at: fc.nat({ max: 2000 }) }),
    fc.record({ frame: fc.constant("truncate" as const), at: fc.nat({ max: 2000 }) }),
    fc.record({ frame: fc.constant("leading-crlf" as const), count: fc.integer({ min: 1, max: 2000 }) }),
    fc.record({ frame: fc.constant("pipelined" as const), second: fc.constantFrom("same" as const, "garbage" as const) }),
  ];
  if (o.tcp) base.push(fc.record({ frame: fc.constant("chunks" as const), sizes: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 }) }));
  return fc.oneof({ weight: 3, arbitrary: fc.constant({ frame: "none" as const }) }, { weight: 2, arbitrary: fc.oneof(...base) });
}

export interface SipInput {
  template: SipTemplate;
  ops: SipOp[];
  framing: SipFraming;
  /** INVITE bodies: a PBX offer, mutated or garbage. */
  sdp: SdpInput;
}

export function sipInputArb(o: { tcp: boolean; maxHuge: number }): fc.Arbitrary<SipInput> {
  return fc.record({
    template: fc.oneof({ weight: 4, arbitrary: fc.constant("INVITE" as const) }, { weight: 5, arbitrary: fc.constantFrom(...SIP_TEMPLATES) }),
    ops: fc.array(sipOpArb(o), { maxLength: 4 }),
    framing: sipFramingArb(o),
    sdp: sdpInputArb("pbx"),
  });
}

export interface DialogInput {
  template: DialogTemplate;
  ops: SipOp[];
  framing: SipFraming;
  sdp: SdpInput;
}

export function dialogInputArb(o: { maxHuge: number }): fc.Arbitrary<DialogInput> {
  return fc.record({
    template: fc.constantFrom(...DIALOG_TEMPLATES),
    ops: fc.array(sipOpArb(o), { maxLength: 3 }),
    framing: sipFramingArb({ tcp: false }),
    sdp: sdpInputArb("pbx"),
  });
}

/** A SIP message before mutation: start line, headers, body. */
export interface SipDraft {
  startLine: string;
  headers: Array<[string, string]>;
  body: string;
}

/**
 * Applies header/start-line/body operations and serializes with the framing damage. `breaks`: the
 * damage leaves no valid SIP message (a NUL in the start line or a header, no blank line, a body
 * shorter than its Content-Length), so nothing it says may lead anywhere.
 */
export function renderSip(draft: SipDraft, ops: readonly SipOp[], framing: SipFraming): { text: string; chunks: number[] | undefined; breaks: boolean } {
  let [method, uri, version] = draft.startLine.split(" ") as [string, string, string];
  const isResponse = draft.startLine.startsWith("SIP/2.0 ");
  const heads = draft.headers.map(([k, v]) => [k, v] as [string, string]);
  let body = draft.body;
  let contentLength: string | undefined;
  const pick = (at: number): number | undefined => (heads.length === 0 ? undefined : at % heads.length);
  for (const op of ops) {
    switch (op.sip) {
      case "delete-header": {
        const i = pick(op.at);
        if (i !== undefined) heads.splice(i, 1);
        break;
      }
      case "duplicate-header": {
        const i = pick(op.at);
        if (i !== undefined) heads.splice(i, 0, ...Array.from({ length: op.times }, () => [...heads[i]!] as [string, string]));
        break;
      }
      case "set-header": {
        const i = pick(op.at);
        if (i !== undefined) heads[i]![1] = op.value;
        break;
      }
      case "rename-header": {
        const i = pick(op.at);
        if (i !== undefined) heads[i]![0] = op.name;
        break;
      }
      case "add-header":
        heads.push([op.name, op.value]);
        break;
      case "many-headers":
        for (let i = 0; i < op.count; i++) heads.push([`X-Fuzz-${i}`, `v${i}`]);
        break;
      case "huge-header":
        heads.push(["X-Huge", renderHuge(op.h).replace(/\r\n/g, "  ")]);
        break;
      case "fold-header": {
        const i = pick(op.at);
        if (i !== undefined) heads[i]![1] = `${heads[i]![1]}\r\n  folded`;
        break;
      }
      case "method":
        if (!isResponse) method = op.method;
        break;
      case "request-uri":
        if (!isResponse) uri = op.uri;
        break;
      case "version":
        if (!isResponse) version = op.version;
        break;
      case "content-length":
        contentLength = op.value;
        break;
      case "body":
        body = op.body;
        break;
    }
  }
  const startLine = isResponse ? draft.startLine : `${method} ${uri} ${version}`;
  if (!heads.some(([k]) => /^(content-length|l)$/i.test(k.trim()))) heads.push(["Content-Length", String(Buffer.byteLength(body, "latin1"))]);
  if (contentLength !== undefined) {
    const i = heads.findIndex(([k]) => /^(content-length|l)$/i.test(k.trim()));
    heads[i]![1] = contentLength;
  }
  let text = `${startLine}\r\n${heads.map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${body}`;
  const headEnd = text.indexOf("\r\n\r\n");
  let chunks: number[] | undefined;
  let breaks = false;
  switch (framing.frame) {
    case "none":
      break;
    case "no-blank-line":
      text = text.replace("\r\n\r\n", "\r\n");
      breaks = true;
      break;
    case "lf-only":
      text = text.replace(/\r\n/g, "\n");
      break;
    case "nul": {
      const at = framing.at % (text.length + 1);
      text = `${text.slice(0, at)}\u0000${text.slice(at)}`;
      // In the body it only shifts the last byte past Content-Length; in the head it is illegal.
      breaks = at < headEnd;
      break;
    }
    case "truncate": {
      const at = framing.at % (text.length + 1);
      breaks = at < text.length;
      text = text.slice(0, at);
      break;
    }
    case "leading-crlf":
      text = "\r\n".repeat(framing.count) + text;
      break;
    case "pipelined":
      text = framing.second === "same" ? text + text : `${text}\u0016\u0003\u0001 not sip \r\n\r\n`;
      break;
    case "chunks":
      chunks = framing.sizes;
      break;
  }
  return { text, chunks, breaks };
}

// ---- RTP and RTCP -------------------------------------------------------------------------------

export interface RtpSpec {
  kind: "rtp";
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  seq: number;
  timestamp: number;
  ssrc: "real" | "zero" | "random" | "max";
  randomSsrc: number;
  /** Extension: profile and declared length (words), with `extWords` actually present. */
  extLength: number;
  extWords: number;
  payloadLength: number;
  paddingCount: number;
  /** Cut the packet to this many bytes (undefined = whole). */
  cut: number | undefined;
  fill: number;
}

export interface RtcpItem {
  version: number;
  count: number;
  packetType: number;
  /** Declared length in 32-bit words minus one, vs. words actually present. */
  declaredWords: number;
  bodyWords: number;
  fill: number;
}

export interface RtcpSpec {
  kind: "rtcp";
  items: RtcpItem[];
  cut: number | undefined;
}

export interface GarbageDatagram {
  kind: "garbage";
  /** First byte (the demultiplexing byte of RFC 7983) and the rest. */
  first: number;
  bytes: number[];
}

/** Datagrams shaped like what arrives on a WebRTC port (RFC 7983 demultiplexing), with lying length fields. */
export interface WebrtcShaped {
  kind: "webrtc";
  shape: "stun" | "dtls" | "srtp" | "srtcp";
  /** STUN message type / DTLS content type / RTP payload type, as the shape reads it. */
  type: number;
  declaredLength: number;
  bodyLength: number;
  fill: number;
}

export type PacketSpec = RtpSpec | RtcpSpec | GarbageDatagram | WebrtcShaped;

export function rtpSpecArb(): fc.Arbitrary<RtpSpec> {
  return fc.record({
    kind: fc.constant("rtp" as const),
    version: fc.oneof({ weight: 4, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }) }),
    padding: fc.boolean(),
    extension: fc.boolean(),
    csrcCount: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 15 })),
    marker: fc.boolean(),
    payloadType: fc.oneof(fc.constantFrom(0, 8, 9, 13, 18, 96, 97, 101, 110, 111, 126, 127, 72, 73, 76, 77), fc.integer({ min: 0, max: 127 })),
    seq: fc.integer({ min: 0, max: 65535 }),
    timestamp: fc.oneof(fc.constantFrom(0, 0xffffffff, 0x80000000), fc.nat()),
    ssrc: fc.constantFrom("real" as const, "zero" as const, "random" as const, "max" as const),
    randomSsrc: fc.nat(),
    extLength: fc.integer({ min: 0, max: 65535 }),
    extWords: fc.integer({ min: 0, max: 8 }),
    payloadLength: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 1400 })),
    paddingCount: fc.integer({ min: 0, max: 255 }),
    cut: fc.option(fc.integer({ min: 0, max: 40 }), { freq: 4 }).map((v) => v ?? undefined),
    fill: fc.integer({ min: 0, max: 255 }),
  });
}

export function rtcpSpecArb(): fc.Arbitrary<RtcpSpec> {
  const item: fc.Arbitrary<RtcpItem> = fc.record({
    version: fc.oneof({ weight: 5, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }) }),
    count: fc.integer({ min: 0, max: 31 }),
    packetType: fc.oneof(fc.constantFrom(200, 201, 202, 203, 204, 205, 206, 207), fc.integer({ min: 190, max: 215 }), fc.integer({ min: 0, max: 255 })),
    declaredWords: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.constantFrom(0xffff, 0x8000, 100)),
    bodyWords: fc.integer({ min: 0, max: 16 }),
    fill: fc.integer({ min: 0, max: 255 }),
  });
  return fc.record({
    kind: fc.constant("rtcp" as const),
    items: fc.array(item, { minLength: 1, maxLength: 6 }),
    cut: fc.option(fc.integer({ min: 0, max: 60 }), { freq: 4 }).map((v) => v ?? undefined),
  });
}

export function garbageDatagramArb(): fc.Arbitrary<GarbageDatagram> {
  return fc.record({
    kind: fc.constant("garbage" as const),
    first: fc.oneof(fc.constantFrom(0, 1, 2, 3, 20, 21, 22, 23, 63, 64, 127, 128, 191, 192, 255), fc.integer({ min: 0, max: 255 })),
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }),
  });
}

export function webrtcShapedArb(): fc.Arbitrary<WebrtcShaped> {
  return fc.record({
    kind: fc.constant("webrtc" as const),
    shape: fc.constantFrom("stun" as const, "dtls" as const, "srtp" as const, "srtcp" as const),
    type: fc.oneof(fc.constantFrom(0x0001, 0x0101, 0x0111, 0x0011, 20, 21, 22, 23, 111, 96, 200, 206), fc.integer({ min: 0, max: 0xffff })),
    declaredLength: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(0xffff, 0x4000, 3)),
    bodyLength: fc.integer({ min: 0, max: 200 }),
    fill: fc.integer({ min: 0, max: 255 }),
  });
}

/** `webrtc`: weight of WebRTC-shaped datagrams (for the Meta leg's port). */
export function packetSpecArb(o: { garbageWeight: number; webrtcWeight?: number }): fc.Arbitrary<PacketSpec> {
  return fc.oneof(
    { weight: 4, arbitrary: rtpSpecArb() },
    { weight: 3, arbitrary: rtcpSpecArb() },
    { weight: o.garbageWeight, arbitrary: garbageDatagramArb() },
    { weight: o.webrtcWeight ?? 0, arbitrary: webrtcShapedArb() },
  );
}

/** Serializes a packet spec; `realSsrc` is the SSRC of the stream the packet pretends to belong to. */
export function renderPacket(p: PacketSpec, realSsrc: number): Buffer {
  if (p.kind === "garbage") return Buffer.from([p.first, ...p.bytes]);
  if (p.kind === "webrtc") return renderWebrtcShaped(p, realSsrc);
  if (p.kind === "rtcp") {
    const parts = p.items.map((it) => {
      const b = Buffer.alloc(4 + it.bodyWords * 4, it.fill);
      b[0] = ((it.version & 3) << 6) | (it.count & 0x1f);
      b[1] = it.packetType & 0xff;
      b.writeUInt16BE(it.declaredWords & 0xffff, 2);
      if (it.bodyWords > 0) b.writeUInt32BE(realSsrc >>> 0, 4);
      return b;
    });
    const whole = Buffer.concat(parts);
    return p.cut === undefined ? whole : whole.subarray(0, p.cut);
  }
  const ssrc = p.ssrc === "real" ? realSsrc : p.ssrc === "zero" ? 0 : p.ssrc === "max" ? 0xffffffff : p.randomSsrc;
  const header = Buffer.alloc(12 + p.csrcCount * 4, p.fill);
  header[0] = ((p.version & 3) << 6) | (p.padding ? 0x20 : 0) | (p.extension ? 0x10 : 0) | (p.csrcCount & 0x0f);
  header[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  header.writeUInt16BE(p.seq, 2);
  header.writeUInt32BE(p.timestamp >>> 0, 4);
  header.writeUInt32BE(ssrc >>> 0, 8);
  const ext = p.extension ? Buffer.alloc(4 + p.extWords * 4, p.fill) : Buffer.alloc(0);
  if (p.extension) {
    ext.writeUInt16BE(0xbede, 0);
    ext.writeUInt16BE(p.extLength, 2);
  }
  const payload = Buffer.alloc(p.payloadLength, p.fill);
  const padding = p.padding ? Buffer.from([...Array(Math.max(0, Math.min(p.paddingCount, 8) - 1)).fill(0), p.paddingCount]) : Buffer.alloc(0);
  const whole = Buffer.concat([header, ext, payload, padding]);
  return p.cut === undefined ? whole : whole.subarray(0, p.cut);
}

function renderWebrtcShaped(p: WebrtcShaped, realSsrc: number): Buffer {
  const body = Buffer.alloc(p.bodyLength, p.fill);
  switch (p.shape) {
    case "stun": {
      // Header (type, length, magic cookie, transaction id) and one attribute whose length lies.
      const h = Buffer.alloc(20 + 4);
      h.writeUInt16BE(p.type & 0x3fff, 0);
      h.writeUInt16BE(p.declaredLength, 2);
      h.writeUInt32BE(0x2112a442, 4);
      h.fill(p.fill, 8, 20);
      h.writeUInt16BE(0x0006, 20);
      h.writeUInt16BE(p.declaredLength, 22);
      return Buffer.concat([h, body]);
    }
    case "dtls": {
      // Record layer: content type, DTLS 1.2, epoch, sequence, length; then a handshake header.
      const h = Buffer.alloc(13 + 12);
      h[0] = 20 + (p.type % 4);
      h.writeUInt16BE(0xfefd, 1);
      h.writeUInt16BE(p.fill & 1, 3);
      h.writeUIntBE(p.fill, 5, 6);
      h.writeUInt16BE(p.declaredLength, 11);
      h[13] = 1;
      h.writeUIntBE((p.declaredLength * 1000) % 0x1000000, 14, 3);
      return Buffer.concat([h, body]);
    }
    case "srtp": {
      // An RTP header on the real SSRC, an encrypted-looking payload and a 10-byte tag that cannot verify.
      const h = Buffer.alloc(12);
      h[0] = 0x80;
      h[1] = p.type & 0x7f;
      h.writeUInt16BE(p.declaredLength, 2);
      h.writeUInt32BE((p.fill * 960) >>> 0, 4);
      h.writeUInt32BE(realSsrc >>> 0, 8);
      return Buffer.concat([h, body, Buffer.alloc(10, p.fill ^ 0x5a)]);
    }
    case "srtcp": {
      const h = Buffer.alloc(8);
      h[0] = 0x80;
      h[1] = 200 + (p.type % 8);
      h.writeUInt16BE(p.declaredLength, 2);
      h.writeUInt32BE(realSsrc >>> 0, 4);
      // E flag and index, then the tag.
      return Buffer.concat([h, body, Buffer.from([0x80, 0, 0, p.fill]), Buffer.alloc(10, p.fill)]);
    }
  }
}

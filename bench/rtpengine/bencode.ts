/**
 * Bencode as rtpengine's NG control protocol uses it: dictionaries, lists, integers and byte
 * strings. Strings decode to UTF-8 text because every NG value (SDP, flags, call ids) is text.
 */
export type BencodeValue = string | number | BencodeValue[] | { [key: string]: BencodeValue };

export function bencode(value: BencodeValue): Buffer {
  const parts: Buffer[] = [];
  write(value, parts);
  return Buffer.concat(parts);
}

function write(value: BencodeValue, out: Buffer[]): void {
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    out.push(Buffer.from(`${bytes.length}:`), bytes);
  } else if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new TypeError(`bencode integers only, got ${value}`);
    out.push(Buffer.from(`i${value}e`));
  } else if (Array.isArray(value)) {
    out.push(Buffer.from("l"));
    for (const item of value) write(item, out);
    out.push(Buffer.from("e"));
  } else {
    out.push(Buffer.from("d"));
    // Keys must be sorted as raw byte strings.
    for (const key of Object.keys(value).sort()) {
      write(key, out);
      write(value[key] as BencodeValue, out);
    }
    out.push(Buffer.from("e"));
  }
}

export function bdecode(buf: Buffer): BencodeValue {
  const [value, end] = read(buf, 0);
  if (end !== buf.length) throw new SyntaxError(`trailing bytes after bencoded value at ${end}`);
  return value;
}

function read(buf: Buffer, at: number): [BencodeValue, number] {
  const c = buf[at];
  if (c === undefined) throw new SyntaxError("bencode ended early");
  if (c === 0x69 /* i */) {
    const end = buf.indexOf(0x65 /* e */, at);
    if (end < 0) throw new SyntaxError("unterminated integer");
    return [Number(buf.toString("latin1", at + 1, end)), end + 1];
  }
  if (c === 0x6c /* l */) {
    const list: BencodeValue[] = [];
    let p = at + 1;
    while (buf[p] !== 0x65) {
      const [item, next] = read(buf, p);
      list.push(item);
      p = next;
    }
    return [list, p + 1];
  }
  if (c === 0x64 /* d */) {
    const dict: { [key: string]: BencodeValue } = {};
    let p = at + 1;
    while (buf[p] !== 0x65) {
      const [key, afterKey] = read(buf, p);
      if (typeof key !== "string") throw new SyntaxError("dictionary key is not a string");
      const [item, next] = read(buf, afterKey);
      dict[key] = item;
      p = next;
    }
    return [dict, p + 1];
  }
  if (c >= 0x30 && c <= 0x39) {
    const colon = buf.indexOf(0x3a /* : */, at);
    if (colon < 0) throw new SyntaxError("string without length separator");
    const length = Number(buf.toString("latin1", at, colon));
    const start = colon + 1;
    if (start + length > buf.length) throw new SyntaxError("string runs past the end");
    return [buf.toString("utf8", start, start + length), start + length];
  }
  throw new SyntaxError(`unexpected byte 0x${c.toString(16)} at ${at}`);
}

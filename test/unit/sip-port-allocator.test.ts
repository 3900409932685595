import { describe, expect, it } from "vitest";
import { PortAllocationError } from "../../sip/errors.js";
import { PortAllocator } from "../../sip/rtp/port-allocator.js";

describe("PortAllocator", () => {
  it("hands out even RTP ports (RTCP = +1) inside the range, never twice", () => {
    const a = new PortAllocator({ address: "127.0.0.1", minPort: 10001, maxPort: 10010 });
    expect(a.capacity).toBe(4); // 10002/3, 10004/5, 10006/7, 10008/9 (10010 has no odd partner)
    const got = [a.reserve(), a.reserve(), a.reserve(), a.reserve()];
    expect(got).toEqual([10002, 10004, 10006, 10008]);
    expect(a.reserve()).toBeUndefined();
    expect(a.allocatedCount).toBe(4);
  });

  it("returns released pairs, round-robin so a just-freed pair is not reused at once", () => {
    const a = new PortAllocator({ address: "127.0.0.1", minPort: 10000, maxPort: 10007 });
    expect(a.reserve()).toBe(10000);
    expect(a.reserve()).toBe(10002);
    a.unreserve(10000);
    expect(a.reserve()).toBe(10004);
    expect(a.reserve()).toBe(10006);
    expect(a.reserve()).toBe(10000);
    expect(a.reserve()).toBeUndefined();
  });

  it("rejects ranges without a pair or outside the unprivileged ports", () => {
    expect(() => new PortAllocator({ address: "127.0.0.1", minPort: 10001, maxPort: 10002 })).toThrow(PortAllocationError);
    expect(() => new PortAllocator({ address: "127.0.0.1", minPort: 80, maxPort: 1000 })).toThrow(PortAllocationError);
    expect(() => new PortAllocator({ address: "127.0.0.1", minPort: 65000, maxPort: 70000 })).toThrow(PortAllocationError);
  });

  it("binds real sockets and releases them", async () => {
    const base = 10000 + 2 * Math.floor(Math.random() * 4900);
    const a = new PortAllocator({ address: "127.0.0.1", minPort: base, maxPort: base + 3 });
    const pair = await a.allocate();
    expect(pair.rtpPort % 2).toBe(0);
    expect(pair.rtcpPort).toBe(pair.rtpPort + 1);
    expect(pair.rtp.address().port).toBe(pair.rtpPort);
    expect(pair.rtcp.address().port).toBe(pair.rtcpPort);
    await pair.release();
    await pair.release(); // idempotent
    expect(a.allocatedCount).toBe(0);
  });
});

import { describe, expect, it } from "vitest";
import { MediaTicker } from "../../gateway/call/media-ticker.js";

describe("MediaTicker", () => {
  it("logs a failing handler at most once a second, counting what it left out, and keeps the others running", async () => {
    const lines: { obj: { err?: unknown; suppressed?: number }; msg: string | undefined }[] = [];
    const ticker = new MediaTicker(5, { error: (obj, msg) => lines.push({ obj, msg }) });
    let healthyTicks = 0;
    const removeFailing = ticker.add(() => {
      throw new Error("decoder exploded");
    });
    const removeHealthy = ticker.add(() => healthyTicks++);
    await new Promise((r) => setTimeout(r, 1_500));
    removeFailing();
    removeHealthy();

    expect(lines.length).toBe(2);
    expect(lines[0]!.msg).toBe("media tick handler failed");
    expect((lines[0]!.obj.err as Error).message).toBe("decoder exploded");
    expect(lines[0]!.obj.suppressed).toBe(0);
    // Ticks that failed in between are counted, not lost.
    expect(lines[1]!.obj.suppressed).toBeGreaterThan(20);
    expect(healthyTicks).toBeGreaterThan(lines[1]!.obj.suppressed!);
    expect(ticker.size).toBe(0);
  });
});

import { createSocket } from "node:dgram";

/** Active handles of this process by kind (UDPWrap, Timeout, ...), for leak checks. */
export function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

/** Whether a UDP port on 127.0.0.1 is free again. */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    s.once("error", () => resolve(false));
    s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

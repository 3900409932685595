import { fileURLToPath } from "node:url";
import type { LoadgenApi, LoadgenCommand, RpcRequest, RpcResponse } from "../ipc.js";
import type { ManagedProcess, ProcessGroup } from "./processes.js";

const LOADGEN_MAIN = fileURLToPath(new URL("../loadgen/main.js", import.meta.url));

/** The orchestrator's handle on one load-generator process. */
export class LoadgenClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(readonly process: ManagedProcess) {
    process.child.on("message", (m: RpcResponse) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.process.name}: ${m.error}`));
    });
    void process.exited.then((code) => {
      for (const p of this.pending.values()) p.reject(new Error(`${this.process.name} exited (${code}): ${this.process.tail.slice(-5).join(" | ")}`));
      this.pending.clear();
    });
  }

  /** `profileDir`: write a V8 CPU profile there when the process exits. */
  static start(group: ProcessGroup, name: string, profileDir?: string): LoadgenClient {
    const prof = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
    return new LoadgenClient(group.spawn(name, process.execPath, [...prof, LOADGEN_MAIN], { ipc: true }));
  }

  get pid(): number {
    return this.process.pid;
  }

  request<C extends LoadgenCommand>(command: C, args: LoadgenApi[C]["args"], timeoutMs = 120_000): Promise<LoadgenApi[C]["result"]> {
    const id = this.nextId++;
    const message: RpcRequest<C> = { id, command, args };
    return new Promise<LoadgenApi[C]["result"]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.process.name}: ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as LoadgenApi[C]["result"]);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.process.child.send(message);
    });
  }
}

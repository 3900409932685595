import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { ConsumerClosedError, ConsumerNegotiationError, SimStateError } from "./errors.js";
import { LOOPBACK_HOST } from "./loopback-ice.js";
import { attribute, attributes, parseSdp, serializeSdp, type SdpMediaSection } from "./sdp-text.js";

/**
 * One headless Chromium for the simulator's browser-played consumers (Messenger and WhatsApp), driven
 * with playwright-core: launching it the way design.md says, serving consumer pages from inside the
 * browser, and calling into a page's script.
 */

/** Debian's Chromium; never a downloaded browser build. */
export const DEFAULT_CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Switches for Chromium on these machines (design.md, "Testing against real things"): headless as root,
 * no network activity of its own, fake devices granted without a prompt, WebRTC on loopback.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
];

export interface ChromiumOptions {
  /** Default /usr/bin/chromium. */
  executablePath?: string;
  /** Added after CHROMIUM_ARGS. */
  extraArgs?: readonly string[];
  /** Browser start limit (default 30 s). */
  launchTimeoutMs?: number;
}

/** Pages are served at `http://127.0.0.1/<name>`: a secure context, answered by a route inside the browser. */
const PAGE_ORIGIN = `http://${LOOPBACK_HOST}/`;

/**
 * Page-side helpers every consumer script can use (`globalThis.simPage`): the peer connection, waiting
 * for ICE gathering, and ears for the remote audio. Plain JavaScript, evaluated before the consumer's own script.
 */
const PAGE_HELPERS = String.raw`
(() => {
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const check = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
  globalThis.simPage = {
    /** The consumer's peer connection (no ICE servers: host candidates only), its remote audio going to ears. */
    peer(ears, failures) {
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require", iceServers: [] });
      pc.addEventListener("track", (e) => {
        if (e.track.kind === "audio") ears.attach(e.track);
      });
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "failed") failures.push("connection failed");
      });
      return pc;
    },
    async localSdp(pc) {
      await gathered(pc);
      return pc.localDescription.sdp;
    },
    /**
     * What the consumer hears. Remote audio is only decoded (and counted in totalAudioEnergy) while
     * something plays it out, so each remote track gets an <audio> element as well as the WebAudio taps:
     * an analyser (dominant frequency), and with record set, 16-bit PCM kept for drain().
     */
    ears(o) {
      const e = { context: null, analyser: null, players: [], chunks: [], recorder: null, failures: o.failures };
      const ensure = () => {
        if (e.context) return;
        e.context = o.sampleRate ? new AudioContext({ sampleRate: o.sampleRate }) : new AudioContext();
        e.analyser = e.context.createAnalyser();
        e.analyser.fftSize = 8192;
        if (o.record) {
          // ScriptProcessor needs no module URL (every request leaves this page refused) and runs while connected.
          e.recorder = e.context.createScriptProcessor(2048, 1, 1);
          e.recorder.onaudioprocess = (ev) => {
            const input = ev.inputBuffer.getChannelData(0);
            const pcm = new Int16Array(input.length);
            for (let i = 0; i < input.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(input[i] * 32767)));
            e.chunks.push(pcm);
          };
          e.recorder.connect(e.context.destination);
        }
      };
      return {
        attach(track) {
          ensure();
          const stream = new MediaStream([track]);
          const el = new Audio();
          el.srcObject = stream;
          el.play().catch((err) => e.failures.push("audio playout: " + err));
          e.players.push(el);
          const source = e.context.createMediaStreamSource(stream);
          source.connect(e.analyser);
          if (e.recorder) source.connect(e.recorder);
          if (e.context.state !== "running") e.context.resume();
        },
        get sampleRate() {
          return e.context ? e.context.sampleRate : 0;
        },
        hear() {
          // The dominant frequency of what the consumer hears, and its level (dBFS) from the analyser's spectrum.
          if (!e.analyser) return { hz: 0, dbfs: -Infinity };
          if (e.context.state !== "running") e.context.resume();
          const bins = new Float32Array(e.analyser.frequencyBinCount);
          e.analyser.getFloatFrequencyData(bins);
          let best = 1;
          for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
          return { hz: (best * e.context.sampleRate) / e.analyser.fftSize, dbfs: bins[best] };
        },
        /** The PCM recorded since the last drain, as base64 of little-endian 16-bit samples. */
        drain() {
          const total = e.chunks.reduce((n, c) => n + c.length, 0);
          const all = new Int16Array(total);
          let at = 0;
          for (const c of e.chunks) {
            all.set(c, at);
            at += c.length;
          }
          e.chunks = [];
          const bytes = new Uint8Array(all.buffer);
          let binary = "";
          for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
          return btoa(binary);
        },
        close() {
          for (const el of e.players) el.srcObject = null;
          if (e.context) e.context.close();
        },
      };
    },
  };
})();
`;

/** Anything a page's owner must shut when the browser closes. */
interface Closable {
  close(): Promise<void>;
}

/**
 * One headless Chromium (its own fresh profile directory). Throws when Chromium or playwright-core is
 * missing: tests that need a real browser fail, never skip.
 */
export class Chromium {
  private readonly owners = new Set<Closable>();
  private closed = false;

  private constructor(
    private readonly context: BrowserContext,
    private readonly userDataDir: string,
  ) {}

  static async launch(options: ChromiumOptions = {}): Promise<Chromium> {
    const executablePath = options.executablePath ?? DEFAULT_CHROMIUM_PATH;
    if (!existsSync(executablePath)) {
      throw new Error(`Chromium not found at ${executablePath}: install Debian's chromium package (scripts/setup.sh does)`);
    }
    let playwright: typeof import("playwright-core");
    try {
      playwright = await import("playwright-core");
    } catch (error) {
      throw new Error("playwright-core is not installed: run npm ci (it is a devDependency)", { cause: error });
    }
    const userDataDir = await mkdtemp(join(tmpdir(), "consumer-chromium-"));
    let context: BrowserContext;
    try {
      context = await playwright.chromium.launchPersistentContext(userDataDir, {
        executablePath,
        headless: true,
        args: [...CHROMIUM_ARGS, ...(options.extraArgs ?? [])],
        timeout: options.launchTimeoutMs ?? 30_000,
      });
    } catch (error) {
      await rm(userDataDir, { recursive: true, force: true });
      throw new Error(`Chromium (${executablePath}) did not start: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    // Consumer pages are served from inside the browser; any other request is refused before it leaves.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      const name = url.startsWith(PAGE_ORIGIN) ? url.slice(PAGE_ORIGIN.length) : "";
      return /^[a-z-]{1,40}$/.test(name)
        ? route.fulfill({ status: 200, contentType: "text/html", body: `<!doctype html><title>${name}</title>` })
        : route.abort("blockedbyclient");
    });
    return new Chromium(context, userDataDir);
  }

  /** Chromium's version, e.g. `156.0.8078.79`. */
  get version(): string {
    return this.context.browser()?.version() ?? "unknown";
  }

  /** A new page at `http://127.0.0.1/<name>` with the helpers and `script` evaluated in it. */
  async openPage(name: string, script: string): Promise<Page> {
    if (this.closed) throw new SimStateError("the consumer browser is closed");
    const page = await this.context.newPage();
    try {
      await page.goto(`${PAGE_ORIGIN}${name}`);
      await page.evaluate(PAGE_HELPERS);
      await page.evaluate(script);
      return page;
    } catch (error) {
      await page.close().catch(() => undefined);
      throw error;
    }
  }

  /** Closes `owner` with the browser; returns the function that forgets it (when it closed first). */
  track(owner: Closable): () => void {
    this.owners.add(owner);
    return () => this.owners.delete(owner);
  }

  /** Closes every tracked consumer, the browser, and removes its profile directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.owners].map((c) => c.close()));
    await this.context.close().catch(() => undefined);
    await rm(this.userDataDir, { recursive: true, force: true });
  }
}

/**
 * Calls into one consumer page's script object (`globalThis[api]`), one description change at a time.
 * Errors become ConsumerClosedError once the page is gone, else ConsumerNegotiationError naming the method.
 */
export class PageScript<Method extends string> {
  private closed = false;
  /** Serializes signalling: Chromium must see one description change at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly page: Page,
    private readonly api: string,
  ) {}

  get isClosed(): boolean {
    return this.closed || this.page.isClosed();
  }

  async call(method: Method, arg?: unknown): Promise<unknown> {
    if (this.closed) throw new ConsumerClosedError("consumer closed");
    try {
      return await this.page.evaluate(
        ([api, name, value]) => {
          const target = (globalThis as unknown as Record<string, Record<string, (a: unknown) => unknown>>)[api]!;
          return target[name]!(value);
        },
        [this.api, method, arg] as const,
      );
    } catch (error) {
      if (this.isClosed) throw new ConsumerClosedError("consumer closed", { cause: error });
      throw new ConsumerNegotiationError(`Chromium ${method} failed: ${errorText(error)}`, { cause: error });
    }
  }

  serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = (): Promise<T> => {
      if (this.closed) throw new ConsumerClosedError("consumer closed");
      return work();
    };
    const run = this.queue.then(next, next);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Runs the script's `close()` (tracks stopped, peer connection closed), then closes the page. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.page.evaluate(`globalThis.${this.api} && globalThis.${this.api}.close()`).catch(() => undefined);
    await this.page.close().catch(() => undefined);
  }
}

export function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}

/**
 * Keeps only UDP host candidates on 127.0.0.1 (Chromium also gathers on every other interface, over
 * TCP and as mDNS names) and points `m=`/`c=` at the first of them, like a complete, non-trickle SDP.
 * Throws when none is left: Chromium needs `--allow-loopback-in-peer-connection` to gather one.
 */
export function loopbackOnly(sdp: string): string {
  const doc = parseSdp(sdp);
  const keep = (value: string): boolean => {
    // foundation component transport priority address port typ type ...
    const parts = value.split(" ");
    return (parts[2] ?? "").toLowerCase() === "udp" && parts[4] === LOOPBACK_HOST && parts[7] === "host";
  };
  let kept = 0;
  const media = doc.media.map((section): SdpMediaSection => {
    if (section.port === 0 || attributes(section.lines, "candidate").length === 0) return section;
    const lines = section.lines.filter((line) => !line.startsWith("a=candidate:") || keep(line.slice("a=candidate:".length)));
    const first = attributes(lines, "candidate")[0];
    if (!first) {
      throw new ConsumerNegotiationError(`Chromium gathered no UDP host candidate on ${LOOPBACK_HOST} (mid ${attribute(section.lines, "mid") ?? "?"})`);
    }
    kept++;
    const port = Number(first.split(" ")[5]);
    return { ...section, port, lines: lines.map((line) => (line.startsWith("c=") ? `c=IN IP4 ${LOOPBACK_HOST}` : line)) };
  });
  if (kept === 0) throw new ConsumerNegotiationError("Chromium's SDP carries no candidate");
  return serializeSdp({ session: doc.session, media });
}

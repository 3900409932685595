import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "../../scripts/peers/baresip.js";

/** A certificate and its key as PEM files, and both in one file (what baresip reads). */
export interface TestCert {
  cert: string;
  key: string;
  combined: string;
}

/**
 * Certificates made with openssl for one test run, never committed: a CA the gateway and the
 * peers trust, leaves it signed for 127.0.0.1 (and for a wrong name), and a leaf of a second CA
 * nobody trusts.
 */
export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), "sip-tls-"));
  readonly ca: TestCert;
  private readonly otherCa: TestCert;

  constructor() {
    requireTool("openssl", "Debian package openssl");
    this.ca = this.selfSigned("ca", "Gateway Test CA");
    this.otherCa = this.selfSigned("other-ca", "Unknown Test CA");
  }

  /** A leaf for `subjectAltName` (e.g. `IP:127.0.0.1,DNS:localhost`), signed by the trusted CA or the unknown one. */
  leaf(name: string, subjectAltName: string, issuer: "trusted" | "unknown" = "trusted"): TestCert {
    const ca = issuer === "trusted" ? this.ca : this.otherCa;
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.pem`);
    const ext = join(this.dir, `${name}.ext`);
    writeFileSync(ext, `subjectAltName=${subjectAltName}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`]);
    openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]);
    return this.finish(name, cert, key);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private selfSigned(name: string, cn: string): TestCert {
    const key = join(this.dir, `${name}.key`);
    const cert = join(this.dir, `${name}.pem`);
    openssl([
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${cn}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return this.finish(name, cert, key);
  }

  private finish(name: string, cert: string, key: string): TestCert {
    const combined = join(this.dir, `${name}-combined.pem`);
    writeFileSync(combined, readFileSync(cert, "utf8") + readFileSync(key, "utf8"));
    return { cert, key, combined };
  }
}

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

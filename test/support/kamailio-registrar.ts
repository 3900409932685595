import { KamailioProcess } from "./kamailio-process.js";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "../../scripts/peers/baresip.js";

export interface KamailioRegistrarOptions {
  /** UDP port on 127.0.0.1. */
  port: number;
  realm: string;
  username: string;
  password: string;
  /** Also SIP over TLS on this port, with this certificate and key (PEM files). */
  tls?: { port: number; cert: string; key: string };
}

/**
 * Debian's kamailio as a PBX's registrar (digest with one user, bindings in memory) that routes
 * INVITEs for a registered user to its registered Contact, Record-Routing them. What it did is
 * logged with a `KAM` prefix for tests to read.
 */
export class KamailioRegistrar extends KamailioProcess {
  static async start(o: KamailioRegistrarOptions): Promise<KamailioRegistrar> {
    requireTool("kamailio", "Debian package kamailio");
    const dir = mkdtempSync(join(tmpdir(), "kamailio-reg-"));
    const cfg = join(dir, "kamailio.cfg");
    if (o.tls) {
      writeFileSync(
        join(dir, "tls.cfg"),
        `[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = ${o.tls.key}\ncertificate = ${o.tls.cert}\n\n` +
          `[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n`,
      );
    }
    const tlsLines = o.tls
      ? `enable_tls=yes\nlisten=tls:127.0.0.1:${o.tls.port}\n`
      : "disable_tcp=yes\n";
    const tlsModule = o.tls ? `loadmodule "tls.so"\nmodparam("tls", "config", "${join(dir, "tls.cfg")}")\n` : "";
    if (o.tls && !existsSync("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so")) {
      throw new Error("kamailio's TLS module is not installed: Debian package kamailio-tls-modules (scripts/setup.sh installs it)");
    }
    writeFileSync(
      cfg,
      `#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
${tlsLines}auto_aliases=no
listen=udp:127.0.0.1:${o.port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
${tlsModule}
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("auth", "secret", "kamailio-test-secret")
modparam("usrloc", "db_mode", 0)

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (has_totag()) {
    if (loose_route()) {
      t_relay();
      exit;
    }
    if (is_method("ACK")) {
      if (t_check_trans()) t_relay();
      exit;
    }
    sl_send_reply("404", "Not Here");
    exit;
  }
  if (is_method("CANCEL")) {
    if (t_check_trans()) t_relay();
    exit;
  }
  if (is_method("REGISTER")) {
    if (!pv_www_authenticate("${o.realm}", "${o.password}", "0")) {
      www_challenge("${o.realm}", "1");
      exit;
    }
    if ($au != "${o.username}") { sl_send_reply("403", "Forbidden"); exit; }
    if (!save("location")) { sl_reply_error(); exit; }
    xlog("L_NOTICE", "KAM registered $tu expires $hdr(Expires)\\n");
    exit;
  }
  if (is_method("INVITE")) {
    record_route();
    if (!lookup("location")) { sl_send_reply("404", "Not Registered"); exit; }
    xlog("L_NOTICE", "KAM routed $ci to $ru\\n");
    t_relay();
    exit;
  }
  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
  sl_send_reply("405", "Method Not Allowed");
}
`,
    );
    return KamailioProcess.launch(dir, (proc, d) => new KamailioRegistrar(proc, d));
  }
}

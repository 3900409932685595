import { KamailioProcess } from "./kamailio-process.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "../../scripts/peers/baresip.js";

export interface KamailioOptions {
  /** UDP port on 127.0.0.1 it listens on. */
  port: number;
  /** Where it sends every new INVITE (a phone's SIP port on 127.0.0.1). */
  forwardToPort: number;
  realm: string;
  username: string;
  password: string;
  /** Forwards INVITEs without the 407 challenge. */
  open?: boolean;
  /**
   * Only the `a=crypto` lines of these SRTP suites survive in the INVITEs it forwards, the way a
   * PBX that offers just those would send them; unset = bodies untouched.
   */
  onlyCryptoSuites?: string[];
}

/** The SDES suites a phone may offer (RFC 4568, RFC 6188, RFC 7714). */
const KNOWN_SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AES_192_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"];

/**
 * Debian's kamailio as a PBX's edge proxy: INVITEs must answer a 407 digest challenge (qop=auth)
 * with the one user's credentials, then go on Record-Routed to a phone; requests inside the dialog
 * are loose-routed back through it. What it did is logged with a `KAM` prefix for tests to read.
 */
export class Kamailio extends KamailioProcess {
  static async start(o: KamailioOptions): Promise<Kamailio> {
    requireTool("kamailio", "Debian package kamailio");
    const dir = mkdtempSync(join(tmpdir(), "kamailio-"));
    const cfg = join(dir, "kamailio.cfg");
    const challenge = o.open
      ? ""
      : `if (!pv_proxy_authenticate("${o.realm}", "${o.password}", "0")) {
      xlog("L_NOTICE", "KAM challenge $ci\\n");
      proxy_challenge("${o.realm}", "1");
      exit;
    }
    if ($au != "${o.username}") { sl_send_reply("403", "Forbidden"); exit; }
    xlog("L_NOTICE", "KAM authorized $ci user $au\\n");
    consume_credentials();`;
    // One line with its line break ([[:cntrl:]] is CR and LF here), Content-Length kept right by kamailio.
    const only = o.onlyCryptoSuites;
    const strip = only
      ? KNOWN_SUITES.filter((s) => !only.includes(s))
          .map((s) => `subst_body('/a=crypto:[0-9]+ ${s} [^[:cntrl:]]*[[:cntrl:]]+//g');`)
          .join("\n    ")
      : "";
    writeFileSync(
      cfg,
      `#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:${o.port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
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
loadmodule "auth.so"
modparam("auth", "secret", "kamailio-test-secret")

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (has_totag()) {
    if (loose_route()) {
      xlog("L_NOTICE", "KAM in-dialog $rm loose-routed\\n");
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
  if (is_method("INVITE")) {
    ${challenge}
    ${strip}
    record_route();
    $ru = "sip:" + $rU + "@127.0.0.1:${o.forwardToPort}";
    t_relay();
    exit;
  }
  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
  sl_send_reply("405", "Method Not Allowed");
}
`,
    );
    return KamailioProcess.launch(dir, (proc, d) => new Kamailio(proc, d));
  }
}

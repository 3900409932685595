import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../../gateway/config/config.js";

const secrets = { META_APP_SECRET: "s3cret", META_VERIFY_TOKEN: "verify-me" };
const page = { META_PAGE_ID: "1234567890", META_PAGE_ACCESS_TOKEN: "EAAtoken" };

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("WhatsApp settings", () => {
  it("are off unless numbers are given; a Page alone is a Messenger gateway", () => {
    expect(loadConfig({ ...secrets, ...page }).whatsApp).toBeUndefined();
  });

  it("map each number to its own SIP target or SIP_TARGET, and never log the token", () => {
    const c = loadConfig({
      ...secrets,
      ...page,
      WHATSAPP_PHONE_NUMBERS: "1098765 = sip:sales@pbx.example.com, 2098765",
      WHATSAPP_ACCESS_TOKEN: "EAAwa",
      WHATSAPP_WABA_ID: "5566",
    });
    expect(c.whatsApp).toEqual({
      accessToken: "EAAwa",
      wabaId: "5566",
      numbers: [
        { phoneNumberId: "1098765", sipTarget: "sip:sales@pbx.example.com", keyExchange: "DTLS" },
        { phoneNumberId: "2098765", sipTarget: undefined, keyExchange: "DTLS" },
      ],
    });
    expect(JSON.stringify(redactConfig(c))).not.toContain("EAAwa");
  });

  it("key the numbers listed in WHATSAPP_SDES_NUMBERS with SDES, and refuse one that is not a number of ours", () => {
    const c = loadConfig({ ...secrets, ...page, WHATSAPP_PHONE_NUMBERS: "1098765,2098765", WHATSAPP_ACCESS_TOKEN: "t", WHATSAPP_SDES_NUMBERS: "2098765" });
    expect(c.whatsApp!.numbers.map((n) => n.keyExchange)).toEqual(["DTLS", "SDES"]);
    const err = configError(() => loadConfig({ ...secrets, ...page, WHATSAPP_PHONE_NUMBERS: "1098765", WHATSAPP_ACCESS_TOKEN: "t", WHATSAPP_SDES_NUMBERS: "3098765" }));
    expect(err.setting).toBe("WHATSAPP_SDES_NUMBERS");
  });

  it("make the Page optional: a WhatsApp-only gateway needs no META_PAGE_ID", () => {
    const c = loadConfig({ ...secrets, WHATSAPP_PHONE_NUMBERS: "1098765", WHATSAPP_ACCESS_TOKEN: "EAAwa" });
    expect(c.meta.pageId).toBeUndefined();
    expect(c.meta.pageAccessToken).toBeUndefined();
    expect(configError(() => loadConfig(secrets)).setting).toBe("META_PAGE_ID");
  });

  it.each([
    [{ WHATSAPP_PHONE_NUMBERS: "1098765" }, "WHATSAPP_ACCESS_TOKEN", /required/],
    [{ WHATSAPP_ACCESS_TOKEN: "EAAwa" }, "WHATSAPP_PHONE_NUMBERS", /required/],
    [{ WHATSAPP_PHONE_NUMBERS: "+15550001111", WHATSAPP_ACCESS_TOKEN: "t" }, "WHATSAPP_PHONE_NUMBERS", /numeric phone-number id/],
    [{ WHATSAPP_PHONE_NUMBERS: "1,1", WHATSAPP_ACCESS_TOKEN: "t" }, "WHATSAPP_PHONE_NUMBERS", /twice/],
    [{ WHATSAPP_PHONE_NUMBERS: "1=echo", WHATSAPP_ACCESS_TOKEN: "t" }, "WHATSAPP_PHONE_NUMBERS", /SIP URI/],
    [{ WHATSAPP_PHONE_NUMBERS: "1=pbx.example.com", WHATSAPP_ACCESS_TOKEN: "t" }, "WHATSAPP_PHONE_NUMBERS", /not a SIP URI/],
    [{ WHATSAPP_PHONE_NUMBERS: "1", WHATSAPP_ACCESS_TOKEN: "t", WHATSAPP_WABA_ID: "waba" }, "WHATSAPP_WABA_ID", /numeric/],
  ])("refuse %o naming %s", (settings, setting, pattern) => {
    const err = configError(() => loadConfig({ ...secrets, ...page, ...settings }));
    expect(err.setting).toBe(setting);
    expect(err.message).toMatch(pattern);
  });
});

describe("several Pages", () => {
  it("take one token per Page, in order, and a SIP target per Page where given", () => {
    const c = loadConfig({ ...secrets, META_PAGE_ID: "111=sip:sales@pbx.example.com, 222", META_PAGE_ACCESS_TOKEN: "EAAone, EAAtwo" });
    expect(c.meta.pages).toEqual([
      { pageId: "111", accessToken: "EAAone", sipTarget: "sip:sales@pbx.example.com" },
      { pageId: "222", accessToken: "EAAtwo", sipTarget: undefined },
    ]);
    expect(c.meta.pageId).toBe("111");
    const shown = JSON.stringify(redactConfig(c));
    expect(shown).not.toContain("EAAone");
    expect(shown).not.toContain("EAAtwo");
  });

  it("refuse a token count that does not match the Pages, and a Page listed twice", () => {
    expect(configError(() => loadConfig({ ...secrets, META_PAGE_ID: "111,222", META_PAGE_ACCESS_TOKEN: "EAAone" })).setting).toBe("META_PAGE_ACCESS_TOKEN");
    expect(configError(() => loadConfig({ ...secrets, META_PAGE_ID: "111,111", META_PAGE_ACCESS_TOKEN: "a,b" })).message).toMatch(/twice/);
  });
});

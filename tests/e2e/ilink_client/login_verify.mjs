// Tencent's published iLink client (@tencent-weixin/openclaw-weixin, its compiled QR login)
// against wechat-sdk's standalone simulator, on a login whose phone asks for the number it
// shows (need_verifycode). Tencent's code reads the number from stdin, as a person types
// it; tests/e2e/test_ilink_tencent.py plays the phone through the control API and types
// on this process's stdin. Lines on stdout for the test:
//   DRIVER {"event": "qr_shown", ...}    -> the test scans, and the phone asks for a number
//   DRIVER {"event": "logged_in", ...}   -> the login Tencent's code ended with
// A result that is not what Tencent's code expects throws (exit 1).
//
// Usage: node login_verify.mjs <modules dir> <simulator base URL>
import path from "node:path";

const [modulesDir, baseUrl] = process.argv.slice(2);
const dist = path.join(modulesDir, "@tencent-weixin/openclaw-weixin/dist/src");

// login-qr.js asks a fixed host for QR codes whatever base it is given: send that host's
// requests to the simulator, as a DNS entry would (as driver.mjs does).
const FIXED_HOST = "https://ilinkai.weixin.qq.com/";
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const target = url.startsWith(FIXED_HOST) ? baseUrl + url.slice(FIXED_HOST.length) : url;
  return realFetch(target, init);
};

function say(event, data = {}) {
  process.stdout.write(`\nDRIVER ${JSON.stringify({ event, ...data })}\n`);
}

const loginQr = await import(path.join(dist, "auth/login-qr.js"));
const started = await loginQr.startWeixinLoginWithQr({ apiBaseUrl: baseUrl, accountId: "e2e" });
if (!started.qrcodeUrl) throw new Error(`no QR code link (${started.message})`);
say("qr_shown", { qrcodeUrl: started.qrcodeUrl });
const login = await loginQr.waitForWeixinLogin({
  sessionKey: started.sessionKey,
  apiBaseUrl: baseUrl,
  timeoutMs: 60_000,
});
if (!login.connected) throw new Error(`not what Tencent's client expects: ${login.message}`);
say("logged_in", { accountId: login.accountId, hasToken: Boolean(login.botToken) });
process.exit(0);

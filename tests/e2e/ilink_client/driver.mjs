// Tencent's published iLink client (@tencent-weixin/openclaw-weixin, its compiled dist
// modules) against wechat-sdk's standalone simulator: QR login, notifystart, long polls,
// typing, a text reply, an encrypted image up and one down, a rate limit (ret -2),
// notifystop, an expired session (errcode -14). Every call goes
// through Tencent's own functions; a result that is not what their code expects throws
// (exit 1). Run by tests/e2e/test_ilink_tencent.py, which plays the phone and the user
// through the simulator's control API when told to, by lines on stdout:
//   DRIVER {"event": "qr_shown", ...}    -> the test confirms the scan (POST /sim/accounts/<id>/login)
//   DRIVER {"event": "logged_in", ...}   -> the test has users write (POST /sim/messages)
//   DRIVER {"event": "done", ...}        -> what the client saw, for the test to check
//
// Usage: node driver.mjs <modules dir> <simulator base URL> <work dir>
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const [modulesDir, baseUrl, workDir] = process.argv.slice(2);
const dist = path.join(modulesDir, "@tencent-weixin/openclaw-weixin/dist/src");
const load = (name) => import(path.join(dist, name));

// login-qr.js asks a fixed host (https://ilinkai.weixin.qq.com) for QR codes whatever base
// it is given: send that host's requests to the simulator, as a DNS entry would.
const FIXED_HOST = "https://ilinkai.weixin.qq.com/";
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const target = url.startsWith(FIXED_HOST) ? baseUrl + url.slice(FIXED_HOST.length) : url;
  return realFetch(target, init);
};

function say(event, data = {}) {
  process.stdout.write(`DRIVER ${JSON.stringify({ event, ...data })}\n`);
}

function check(condition, what) {
  if (!condition) throw new Error(`not what Tencent's client expects: ${what}`);
}

const api = await load("api/api.js");
const loginQr = await load("auth/login-qr.js");
const upload = await load("cdn/upload.js");
const picDecrypt = await load("cdn/pic-decrypt.js");
const cdnUrl = await load("cdn/cdn-url.js");
const aes = await load("cdn/aes-ecb.js");
const send = await load("messaging/send.js");
const sessionGuard = await load("api/session-guard.js");
const cdnBaseUrl = baseUrl.replace(/\/$/, "") + "/c2c";

// ---- QR login
const started = await loginQr.startWeixinLoginWithQr({ apiBaseUrl: baseUrl, accountId: "e2e" });
check(started.qrcodeUrl, `a QR code link (${started.message})`);
say("qr_shown", { qrcodeUrl: started.qrcodeUrl });
const login = await loginQr.waitForWeixinLogin({
  sessionKey: started.sessionKey,
  apiBaseUrl: baseUrl,
  timeoutMs: 60_000,
});
check(login.connected, `a confirmed login (${login.message})`);
check(login.botToken && login.accountId?.endsWith("@im.bot"), "a bot token and an ilink_bot_id");
check(login.baseUrl, "the baseurl to use from now on");
const opts = { baseUrl: login.baseUrl, token: login.botToken };
check((await api.notifyStart(opts)).ret === 0, "notifystart ret 0");
say("logged_in", { accountId: login.accountId, userId: login.userId, baseUrl: login.baseUrl });

// ---- long polls until the user's text and image arrived
let buf = "";
const received = [];
const deadline = Date.now() + 60_000;
while (received.length < 2 && Date.now() < deadline) {
  const resp = await api.getUpdates({ ...opts, get_updates_buf: buf, timeoutMs: 10_000 });
  check(!resp.ret && !resp.errcode, `getupdates ret 0 (got ${JSON.stringify(resp)})`);
  check(resp.longpolling_timeout_ms > 0, "a suggested long-poll timeout");
  if (resp.get_updates_buf) buf = resp.get_updates_buf;
  received.push(...(resp.msgs ?? []));
}
check(received.length === 2, `two user messages (got ${received.length})`);
const [textMsg, imageMsg] = received;
const text = textMsg.item_list?.[0]?.text_item?.text;
check(typeof textMsg.message_id === "string", "message_id kept whole (a uint64 as a string)");
check(textMsg.context_token, "a context_token on the user's message");
const peer = textMsg.from_user_id;

// ---- typing, then a text reply with the context token
const config = await api.getConfig({ ...opts, ilinkUserId: peer, contextToken: textMsg.context_token });
check(config.typing_ticket, "a typing_ticket from getconfig");
await api.sendTyping({ ...opts, body: { ilink_user_id: peer, typing_ticket: config.typing_ticket, status: 1 } });
const replyOpts = { ...opts, contextToken: textMsg.context_token };
const reply = await send.sendMessageWeixin({ to: peer, text: `echo: ${text}`, opts: replyOpts });
check(reply.serverMessageId, "a server message_id for the reply");
await api.sendTyping({ ...opts, body: { ilink_user_id: peer, typing_ticket: config.typing_ticket, status: 2 } });

// ---- the user's image: downloaded and decrypted as Tencent's media-download does
const imageItem = imageMsg.item_list.find((item) => item.type === 2).image_item;
const keyB64 = Buffer.from(imageItem.aeskey, "hex").toString("base64");
const image = await picDecrypt.downloadAndDecryptBuffer(
  imageItem.media.encrypt_query_param,
  keyB64,
  cdnBaseUrl,
  "e2e image",
  imageItem.media.full_url,
);
// and again the old way, from the CDN base and the parameter alone (no full_url)
const viaBase = await picDecrypt.downloadAndDecryptBuffer(
  imageItem.media.encrypt_query_param,
  imageItem.media.aes_key,
  cdnBaseUrl,
  "e2e image (built URL)",
);
check(image.equals(viaBase), "the same image by full_url and by the built CDN URL");
check(image.subarray(0, 8).equals(Buffer.from("89504e470d0a1a0a", "hex")), "a PNG");

// ---- an image of ours: uploaded encrypted through getuploadurl and the CDN, then sent
const picture = Buffer.concat([image.subarray(0, 33), crypto.randomBytes(5000)]);
const picturePath = path.join(workDir, "reply.png");
fs.writeFileSync(picturePath, picture);
const uploaded = await upload.uploadFileToWeixin({
  filePath: picturePath,
  toUserId: peer,
  opts,
  cdnBaseUrl,
});
check(uploaded.downloadEncryptedQueryParam, "x-encrypted-param from the CDN upload");
check(uploaded.fileSizeCiphertext === aes.aesEcbPaddedSize(picture.length), "the ciphertext size");
const sentImage = await send.sendImageMessageWeixin({
  to: peer,
  text: "",
  uploaded,
  opts: replyOpts,
  filePath: picturePath,
  mediaMime: "image/png",
});
check(sentImage.serverMessageId, "a server message_id for the image");
// what was uploaded reads back whole with the key kept (the CDN holds ciphertext only)
const back = await picDecrypt.downloadAndDecryptBuffer(
  uploaded.downloadEncryptedQueryParam,
  Buffer.from(uploaded.aeskey).toString("base64"),
  cdnBaseUrl,
  "e2e readback",
);
check(back.equals(picture), "the uploaded image decrypts to what was sent");
check(cdnUrl.buildCdnDownloadUrl("x", cdnBaseUrl).startsWith(cdnBaseUrl), "the CDN URL");

// ---- faults, asked of the simulator's control API, as Tencent's code sees them
async function fault(kind) {
  const res = await realFetch(`${baseUrl}sim/faults`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ kind, account: "bot" }),
  });
  check(res.ok, `the simulator took the ${kind} fault`);
}
await fault("rate_limit");
const limited = await send.sendMessageWeixin({ to: peer, text: "too fast", opts: replyOpts }).then(
  () => null,
  (err) => String(err),
);
check(limited?.includes("ret=-2"), `sendMessage throws on a rate limit (got ${limited})`);
check((await api.notifyStop(opts)).ret === 0, "notifystop ret 0");
await fault("logout");
const stale = await api.getUpdates({ ...opts, get_updates_buf: buf, timeoutMs: 5_000 });
check(stale.errcode === sessionGuard.STALE_TOKEN_ERRCODE, `errcode -14 once the session expired`);

say("done", {
  peer,
  text,
  imageSha256: crypto.createHash("sha256").update(image).digest("hex"),
  sentImageSha256: crypto.createHash("sha256").update(picture).digest("hex"),
  reply: `echo: ${text}`,
});

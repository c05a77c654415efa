'use strict'
/**
 * wechat-sdk's Node sidecar: serves one Wechaty puppet over the Puppet Service gRPC
 * protocol on 127.0.0.1, for the Python gateway that started it.
 *
 * Started by wechat_sdk.adapters.wechaty.sidecar (never by hand). Settings come from the
 * environment:
 *   WECHAT_SDK_PUPPET          npm name of the puppet (wechaty-puppet-wechat, wechaty-puppet-mock, ...)
 *   WECHAT_SDK_PUPPET_OPTIONS  JSON object given to the puppet's constructor
 *   WECHAT_SDK_PORT            port on 127.0.0.1
 *   WECHAT_SDK_TOKEN           the random insecure_ token clients must present
 *   WECHAT_SDK_TLS             "1": TLS with Wechaty's built-in insecure certificate
 *   WECHAT_SDK_MEMORY          path (without suffix) of the puppet's memory card (login state)
 *   WECHAT_SDK_FILE_BOX_DIR    directory of file-box's registry, the files Puppet Service passes
 *                              on (default: os.tmpdir()/file-box-urn-registry.<pid>)
 *   WECHAT_SDK_TEST_CONTROL    "1": with wechaty-puppet-mock only, an HTTP control channel
 *                              on 127.0.0.1 for tests to drive the mock's Mocker
 *
 * The test-only control channel (POST / with a JSON body {"op": ..., ...}) knows these ops:
 *   createContact {name}                       -> {id}
 *   createRoom {topic, memberIds, aliases}     -> {id}  (the bot joins every room)
 *   scan {status, qrcode?}                     -> {}    (emit a SCAN event)
 *   login                                      -> {id}  (the bot's contact id)
 *   logout                                     -> {}
 *   sayDm {from, text}                         -> {}    (a contact says a text to the bot)
 *   sayGroup {from, room, text, mentionIds}    -> {}
 *   sendFile {from, room?, name, base64}       -> {}    (a contact sends a file)
 *   sent {conversation}                        -> {sent: [{text} | {fileName, fileSize}]}
 *   burst {from, count, prefix}                -> {timestamps: [ms, ...]}
 *       `from` is a contact id or a list of them (used in turn); the contacts say the
 *       texts `${prefix}${i}` (i = 0..count-1) to the bot in one go, and the answer has the
 *       creation time of each (Date.now() as it is made, like its payload timestamp; benchmarks)
 *   sentSince {since, countOnly?}              -> {sent: [{text, timestamp, conversation}]}
 *       every text the bot sent with a payload timestamp >= since (ms), oldest first;
 *       with countOnly only {count} (cheap enough to poll during a benchmark)
 *   self                                       -> {id, loggedIn}
 *   remember {key, value}                      -> {}    (set in the puppet's memory card, saved
 *                                                        as a puppet saves its session)
 *   recall {key}                               -> {value}  (null: the card has no such key)
 *
 * It writes one JSON line to stdout when serving ({"event":"listening",...}) and logs to
 * stderr. Its lifetime is tied to the parent: it exits when stdin closes (the parent died
 * or stopped it) and on SIGTERM/SIGINT, stopping the puppet first so the memory card is saved.
 */
const http = require('http')

const env = process.env
const puppetName = env.WECHAT_SDK_PUPPET || 'wechaty-puppet-mock'
const port = Number(env.WECHAT_SDK_PORT)
const token = env.WECHAT_SDK_TOKEN
const useTls = env.WECHAT_SDK_TLS === '1'

function say (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }
function fail (message) {
  say({ event: 'error', message })
  process.exit(2)
}

if (!port || !token) fail('WECHAT_SDK_PORT and WECHAT_SDK_TOKEN are required')

let PuppetServer, MemoryCard, FileBox, UniformResourceNameRegistry
try {
  ({ PuppetServer } = require('wechaty-puppet-service'));
  ({ MemoryCard } = require('memory-card'));
  ({ FileBox, UniformResourceNameRegistry } = require('file-box'))
} catch (e) {
  fail(`the sidecar's npm packages are missing: ${e.message}`)
}

function puppetClass (mod) {
  if (mod.default && typeof mod.default === 'function') return mod.default
  for (const value of Object.values(mod)) {
    if (typeof value === 'function' && value.prototype && typeof value.prototype.messageSendText === 'function') {
      return value
    }
  }
  return undefined
}

let puppet
let server
let mocker
let stopping = false

async function shutdown (code) {
  if (stopping) return
  stopping = true
  const timer = setTimeout(() => process.exit(code), 5000)
  timer.unref()
  try { if (server) await server.stop() } catch (e) { console.error('server stop:', e.message) }
  try { if (puppet) await puppet.stop() } catch (e) { console.error('puppet stop:', e.message) }
  try { if (puppet && puppet.memory) await puppet.memory.save() } catch (e) { console.error('memory save:', e.message) }
  process.exit(code)
}

process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))
process.stdin.on('end', () => shutdown(0))
process.stdin.on('close', () => shutdown(0))
process.stdin.resume()
process.on('unhandledRejection', (e) => { console.error('unhandled rejection:', e && e.stack ? e.stack : e) })

async function main () {
  let options = {}
  if (env.WECHAT_SDK_PUPPET_OPTIONS) {
    try { options = JSON.parse(env.WECHAT_SDK_PUPPET_OPTIONS) } catch (e) { fail(`WECHAT_SDK_PUPPET_OPTIONS is not JSON: ${e.message}`) }
  }
  let mod
  try { mod = require(puppetName) } catch (e) { fail(`cannot load the puppet ${puppetName}: ${e.message}`) }

  if (puppetName === 'wechaty-puppet-mock') {
    mocker = new mod.mock.Mocker()
    options = { ...options, mocker }
  }
  const Cls = puppetClass(mod)
  if (!Cls) fail(`${puppetName} exports no puppet class`)
  puppet = new Cls(options)

  if (env.WECHAT_SDK_MEMORY && typeof puppet.setMemory === 'function') {
    const memory = new MemoryCard({ name: env.WECHAT_SDK_MEMORY, storageOptions: { type: 'file' } })
    await memory.load()
    puppet.setMemory(memory)
  }

  let controlPort
  if (mocker && env.WECHAT_SDK_TEST_CONTROL === '1') {
    controlPort = await startControl(mocker, puppet)
  }

  server = new PuppetServer({
    endpoint: `127.0.0.1:${port}`,
    puppet,
    token,
    tls: { disable: !useTls },
  })
  if (env.WECHAT_SDK_FILE_BOX_DIR) {
    // PuppetServer.start() makes its registry (in os.tmpdir()) only when it has none;
    // server.stop() and the exit remove it, a kill does not: the gateway empties this one
    const registry = new UniformResourceNameRegistry({ storeDir: env.WECHAT_SDK_FILE_BOX_DIR })
    await registry.init()
    server.urnRegistry = registry
  }
  await server.start()
  const listening = { event: 'listening', port, tls: useTls, puppet: puppetName }
  if (controlPort) listening.control = controlPort
  say(listening)
}

/**
 * Test-only control channel for wechaty-puppet-mock: JSON over HTTP on 127.0.0.1.
 * POST / {"op": ..., ...} -> {"ok": true, ...} | {"ok": false, "error": ...}
 */
async function startControl (mocker, puppet) {
  const aliases = new Map() // `${roomId}/${contactId}` -> room alias
  const sentFiles = new Map() // message id -> {name, size}
  let user
  let qrcode = `https://login.weixin.qq.com/l/mock-${Date.now().toString(36)}`

  // the mock has no room aliases: answer them from the control channel's table
  const memberPayload = puppet.roomMemberRawPayload.bind(puppet)
  puppet.roomMemberRawPayload = async (roomId, contactId) => {
    const payload = await memberPayload(roomId, contactId)
    const alias = aliases.get(`${roomId}/${contactId}`)
    return alias ? { ...payload, roomAlias: alias } : payload
  }
  // keep what the bot really sent (bytes counted), since a sent FileBox is only a reference
  const sendFile = puppet.messageSendFile.bind(puppet)
  puppet.messageSendFile = async (conversationId, fileBox) => {
    const buf = await fileBox.toBuffer()
    const copy = FileBox.fromBase64(buf.toString('base64'), fileBox.name)
    const before = new Set(mocker.cacheMessagePayload.keys())
    await sendFile(conversationId, copy)
    for (const id of mocker.cacheMessagePayload.keys()) {
      if (!before.has(id)) sentFiles.set(id, { name: fileBox.name, size: buf.length })
    }
  }
  // the mock shows no QR code by itself: show one when started and after a logout
  puppet.on('start', () => setTimeout(() => { if (!puppet.isLoggedIn) mocker.scan(qrcode, 2) }, 50))
  puppet.on('logout', () => setTimeout(() => { if (!stopping) mocker.scan(qrcode, 2) }, 50))

  const ops = {
    async createContact ({ name }) {
      return { id: mocker.createContact({ name }).id }
    },
    async createRoom ({ topic, memberIds, aliases: roomAliases }) {
      const members = (memberIds || []).slice()
      if (user && !members.includes(user.id)) members.push(user.id)
      const room = mocker.createRoom({ topic, memberIdList: members })
      for (const [cid, alias] of Object.entries(roomAliases || {})) aliases.set(`${room.id}/${cid}`, alias)
      return { id: room.id }
    },
    async scan ({ status, qrcode: code }) {
      if (code) qrcode = code
      mocker.scan(qrcode, status)
      return {}
    },
    async login () {
      if (!user) user = mocker.createContact({ name: 'Wechaty Bot' })
      // the bot is a member of every room made before it logged in
      for (const payload of mocker.cacheRoomPayload.values()) {
        if (!payload.memberIdList.includes(user.id)) payload.memberIdList.push(user.id)
      }
      mocker.scan(qrcode, 3)
      mocker.login(user)
      setTimeout(() => puppet.emit('ready', { data: 'ready' }), 20)
      return { id: user.id }
    },
    async logout () {
      await puppet.logout()
      return {}
    },
    async sayDm ({ from, text }) {
      const contact = mocker.ContactMock.load(from)
      contact.say(text).to(user)
      return {}
    },
    async sayGroup ({ from, room, text, mentionIds }) {
      const contact = mocker.ContactMock.load(from)
      const mentions = (mentionIds || []).map((id) => mocker.ContactMock.load(id))
      contact.say(text, mentions).to(mocker.RoomMock.load(room))
      return {}
    },
    async sendFile ({ from, room, name, base64 }) {
      const contact = mocker.ContactMock.load(from)
      const box = FileBox.fromBase64(base64, name)
      const before = new Set(mocker.cacheMessagePayload.keys())
      contact.say(box).to(room ? mocker.RoomMock.load(room) : user)
      // the mock's classifier knows a few extensions only: type the rest by media type
      for (const [id, p] of mocker.cacheMessagePayload.entries()) {
        if (before.has(id) || p.type !== 0) continue
        const mime = box.mediaType || ''
        p.type = mime.startsWith('image/') ? 6 : mime.startsWith('video/') ? 15 : mime.startsWith('audio/') ? 2 : 1
      }
      return {}
    },
    async sent ({ conversation }) {
      const out = []
      for (const [id, p] of mocker.cacheMessagePayload.entries()) {
        if (!user || p.talkerId !== user.id) continue
        if (p.roomId !== conversation && p.listenerId !== conversation) continue
        const file = sentFiles.get(id)
        out.push(file ? { fileName: file.name, fileSize: file.size } : { text: p.text })
      }
      return { sent: out }
    },
    async burst ({ from, count, prefix }) {
      const contacts = (Array.isArray(from) ? from : [from]).map((id) => mocker.ContactMock.load(id))
      if (!user || contacts.length === 0) throw new Error('burst needs a logged-in bot and a contact')
      const timestamps = []
      for (let i = 0; i < count; i++) {
        timestamps.push(Date.now())
        contacts[i % contacts.length].say(`${prefix || ''}${i}`).to(user)
      }
      return { timestamps }
    },
    async sentSince ({ since, countOnly }) {
      const out = []
      for (const p of mocker.cacheMessagePayload.values()) {
        if (!user || p.talkerId !== user.id || typeof p.text !== 'string') continue
        if (p.timestamp < (since || 0)) continue
        out.push({ text: p.text, timestamp: p.timestamp, conversation: p.roomId || p.listenerId })
      }
      if (countOnly) return { count: out.length }
      out.sort((a, b) => a.timestamp - b.timestamp)
      return { sent: out }
    },
    async self () {
      return { id: user ? user.id : null, loggedIn: puppet.isLoggedIn }
    },
    async remember ({ key, value }) {
      await puppet.memory.set(key, value)
      await puppet.memory.save()
      return {}
    },
    async recall ({ key }) {
      const value = await puppet.memory.get(key)
      return { value: value === undefined ? null : value }
    },
  }

  const srv = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c) => { body += c })
    req.on('end', async () => {
      let result
      try {
        const cmd = JSON.parse(body || '{}')
        const op = ops[cmd.op]
        if (!op) throw new Error(`unknown op ${cmd.op}`)
        result = { ok: true, ...(await op(cmd)) }
      } catch (e) {
        result = { ok: false, error: e.message }
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(result))
    })
  })
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  srv.unref()
  return srv.address().port
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)))

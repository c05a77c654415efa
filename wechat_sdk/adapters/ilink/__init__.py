"""iLink, WeChat's official bot API (Tencent's ``@tencent-weixin/openclaw-weixin`` protocol),
as a puppet: ``puppet: "ilink"`` in an account's config.

Direct chats only, with reply windows: the user writes first; at most 10 bot messages per
user message; nothing 24 h after it. Imported only when an account uses it (it brings
aiohttp and cryptography).

The files, one job each: :mod:`.api` (the HTTP calls and what their answers mean),
:mod:`.wire` (the JSON read into the port's messages), :mod:`.aes` (the CDN's cipher),
:mod:`.cdn` (uploads and streamed, decrypted downloads), :mod:`.login` (the QR login),
:mod:`.session` (the token kept, 0600), :mod:`.state` (what must survive a crash),
:mod:`.sending` (the window, sends and their retries, typing), :mod:`.payloads` (message
payloads and quotes), :mod:`.puppet` (the port),
:mod:`.service` (the options checked, the factory).

Nothing lost, nothing twice
---------------------------

``getupdates`` hands out messages with an opaque cursor (``get_updates_buf``); the next
call with that cursor does not deliver them again. So the cursor may only move once the
messages it covers can no longer be lost:

1. Each answer's messages and its new cursor are written **together, in one SQLite
   transaction** in the store's database (WAL), with each message's JSON, its text, the
   peer's ``context_token`` and reply window.
2. Only then are their ``MessageEvent``\\s emitted. Once the gateway has taken them in
   (its dedupe marks queued, their turns started), one fsync of the WAL makes the batch
   and those marks durable together, and only then does the next ``getupdates`` (which
   tells the server the batch is ours) go out; the replies find their marks durable. A
   crash before the commit, or a power loss before the fsync, leaves the old cursor: the
   server delivers the batch again. After the fsync the messages are recorded.
3. At every start the adapter re-emits the user messages recorded in the last hour.
   The gateway's durable dedupe (an hour; a reply is sent only once its message's mark is
   durable) drops those it already handled, and handles the others: none lost, none
   answered twice.
4. A message recorded before is not recorded again (``INSERT OR IGNORE``): the server
   sometimes delivers a user message twice, seconds apart, under its id or under a new
   one (a copy, known by its :func:`~.copies.copy_key`, recorded with the message, so
   across a restart too). It is emitted again under the recorded id, as any puppet
   emits a message delivered twice: the gateway's dedupe drops it (and counts it), so it
   is answered once.

The state sits behind :class:`~.state.ILinkState` (cursor, record, flush, recent, entry,
windows, context_token, sent, prune): a Redis-backed one can replace the SQLite one.

iLink sends the bot nothing of its own messages; the adapter reports each send the server
accepted as the bot's own message (a ``MessageEvent`` whose talker is ``self_id``, the
port's self-echo, as a Wechaty puppet gives it). The bot's own messages are recorded too
(their text, by the id ``sendmessage`` gave), so a quote of one, which iLink delivers cut,
is given to the agent whole (``Message.quoted_text``).

Each send carries a new ``client_id``, kept when a rate limit (``ret -2``, nothing taken)
makes the adapter send it again; a send whose answer was lost may have been taken and is
not sent again (a final ``SendError``, code ``outcome_unknown``: iLink echoes nothing back
that could tell): nothing twice.
"""

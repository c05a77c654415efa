"""The simulated world served over iLink, WeChat's official bot API, and its CDN.

The same :class:`~simulator.world.SimulatedWeChat` that drives the Wechaty-style puppets
serves its iLink bot accounts over real HTTP (aiohttp, 127.0.0.1), with the wire protocol
of Tencent's published client (``@tencent-weixin/openclaw-weixin``): QR login, long-polled
``getupdates`` with an opaque cursor and a ``context_token`` per peer, ``sendmessage``,
``getconfig``/``sendtyping``, ``msg/notifystart|stop``, ``getuploadurl`` and an
AES-128-ECB CDN. The reply window is enforced as the real server does (the user writes
first; at most 10 bot messages per user message; nothing 24 h after it; bot messages do
not renew it), and faults come on demand through :meth:`SimulatedWeChat.fault`.

The API (names kept stable for the iLink adapter and the gateway):

- ``world.add_account("bot", transport="ilink")``: an iLink bot account. Its
  ``SimAccount.wxid`` is its ``ilink_bot_id`` (``<12 hex>@im.bot``). Users are the world's
  contacts, their id is the iLink user id (``world.add_contact("alice@im.wechat")``, or
  any id).
- ``server = await world.ilink_server()`` (also ``async with await world.ilink_server()``):
  an :class:`ILinkServer` on 127.0.0.1, an ephemeral port (``port=`` to choose), one per
  world (a second call returns the running one; one asking for another host, port or
  ``poll_hold_s`` is a ``ValueError`` naming what it runs with). ``server.base_url`` is the API base
  (``http://127.0.0.1:PORT/``, the ``baseUrl`` of a client), ``server.cdn_base_url`` the
  CDN base (``http://127.0.0.1:PORT/c2c``, its ``cdnBaseUrl``);
  ``server.base_url_for("bot")`` is a base whose QR codes log in that account (for several
  iLink accounts in one gateway); ``await server.close()`` stops it.
- Login: a client asks ``ilink/bot/get_bot_qrcode``; ``world.scan("bot")``,
  ``world.confirm("bot")``, ``world.cancel("bot")`` and ``await world.login("bot")`` act
  as the owner's phone on the oldest QR code waiting (or the one asked for on the
  account's own base); ``get_qrcode_status`` then says ``scaned``, ``confirmed`` (with
  ``bot_token``, ``ilink_bot_id``, ``ilink_user_id``, ``baseurl``) or ``expired``
  (after ``world.qr_ttl_s``).
- Inbound: ``await world.say("alice@im.wechat", "hi", account="bot")`` (and ``media=``,
  ``kind=``, ``age_s=`` as for any account) queues the message for ``getupdates``; media
  are put on the CDN encrypted, with their key in the item (voice: ``voice_item.text`` is
  the said text, the server's transcript). A quote (``quote=``) carries the quoted text
  cut, or the quoted file's item. ``with world.ilink_state.bot("bot").one_message():``
  makes what one user says within it one message of all its items.
- Outbound: each accepted ``sendmessage`` is in ``world.transcript`` /
  ``world.sent(...)`` / ``world.texts(...)`` like any puppet's send, media decrypted from
  the CDN (a bot's voice item is accepted and dropped, as the real server does). A
  ``sendmessage`` needs the user's ``context_token`` and a ``client_id``; a second one
  with a ``client_id`` already accepted (a retry) is answered with the first one's
  ``message_id`` and not sent again.
- Faults, ``world.fault(kind, account="bot", count=1, seconds=None)``: ``logout`` (the
  session expires: every call with its token answers ``errcode -14``), ``rate_limit``
  (``sendmessage`` answers ``ret -2``), ``duplicate_next`` (the next user message is
  delivered twice, 3 s apart), ``slow_poll`` (``getupdates`` answered only after
  ``seconds``, default 40), ``slow_send``, ``send_fail`` (HTTP 503),
  ``send_lost_reply`` (recorded, connection cut before the answer), ``disconnect`` (open
  polls cut), ``heartbeat_silence`` (polls answer nothing for ``seconds``, default 60).
- ``wechat-sdk simulator serve --port N``: the same on the real clock, standalone, with a
  control API under ``/sim/`` (:mod:`simulator.ilink.control`, docs/simulator-server.md).

Time is the world's: long polls wait on ``world.time`` (as background sleepers on a
virtual clock, so ``run_until_idle`` never waits for them), hold for ``poll_hold_s``
(default 30 s) and suggest ``longpolling_timeout_ms`` 35000 (or the hold, when it is
longer).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.ilink.server import ILinkServer, start_ilink_server

__all__ = ["ILinkServer", "start_ilink_server"]


def __getattr__(name: str) -> Any:
    # the server brings aiohttp: loaded when first asked for, not with every world
    if name in __all__:
        from simulator.ilink import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

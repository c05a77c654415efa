"""The iLink HTTP calls, with the headers and ``base_info`` Tencent's client sends, and what
their answers mean to the port.

Bot calls carry ``AuthorizationType: ilink_bot_token``, ``Authorization: Bearer <token>``,
``X-WECHAT-UIN`` (a random uint32 as a decimal string, base64), ``iLink-App-Id`` and
``iLink-App-ClientVersion`` (and ``SKRouteTag`` when ``routeTag`` is set); every POST
body carries ``base_info {channel_version, bot_agent}`` but ``get_bot_qrcode``'s (its
``local_token_list`` alone, as Tencent's client posts it). An answer that is not JSON (an
HTML error page, a cut body, JSON nested too deep to read) is :class:`BadAnswer`;
``errcode``/``ret`` -14 is :class:`SessionExpired`; ``ret`` -2 is :class:`RateLimited`.

The token is only ever in a header: it is in no URL, no error and no log line.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import secrets
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from wechat_sdk.http_date import http_date
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import PuppetError

__all__ = [
    "APP_ID",
    "CHANNEL_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_BOT_AGENT",
    "DEFAULT_CDN_BASE_URL",
    "Answer",
    "ApiError",
    "BadAnswer",
    "ILinkApi",
    "ILinkError",
    "NotConnected",
    "RateLimited",
    "SessionExpired",
    "TimedOut",
    "Unreachable",
]

DEFAULT_BASE_URL = "https://ilinkai.weixin.qq.com"
DEFAULT_CDN_BASE_URL = "https://novac2c.cdn.weixin.qq.com/c2c"
DEFAULT_BOT_AGENT = "wechat-sdk/0.1"
#: the app id and version this client declares (Tencent's client: its package.json)
APP_ID = "bot"
CHANNEL_VERSION = "2.4.9"
#: ``iLink-App-ClientVersion``: the version as a uint32, major<<16 | minor<<8 | patch
CLIENT_VERSION = (2 << 16) | (4 << 8) | 9

STALE_SESSION = -14
RATE_LIMITED = -2
#: seconds: a long poll (the server holds it up to ``longpolling_timeout_ms``), a call
LONG_POLL_S = 35.0
CALL_S = 15.0
LIGHT_CALL_S = 10.0
#: seconds a call's connection may take to be made (the name resolved, TCP, a proxy's
#: tunnel, TLS), under each call's own time: a connect that does not complete in it
#: sent nothing (:class:`NotConnected`), where the call's timeout may come after the
#: request was written
CONNECT_S = 5.0
#: an answer larger than this is refused (a server gone wrong must not fill memory)
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class ILinkError(PuppetError):
    """A call to the iLink server failed; the message says how, without the token."""


class Unreachable(ILinkError):
    """No answer: the connection failed or the call timed out (it may have been received)."""


class NotConnected(Unreachable):
    """The connection could not be made (refused, no route, the name not resolved, or
    not made within :data:`CONNECT_S`): the call never left, so nothing of it was
    received."""


class TimedOut(Unreachable):
    """No answer within the call's time (a long poll waits the server's own hold and a
    margin: the server did not end it)."""


class BadAnswer(ILinkError):
    """The server answered, but not with iLink's JSON (an HTML page, garbage, a cut body),
    or with an HTTP error status (``status``). ``not_taken``: the answer says the call was
    not taken: a 4xx, or a 503 that iLink itself gave (its JSON) or that asks to come back
    (``Retry-After``). A proxy's bare 503, like its 502 or 504 or a 500, may come after the
    server took the call."""

    def __init__(self, message: str, status: int | None = None, not_taken: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.not_taken = not_taken


@dataclass
class ApiError(ILinkError):
    """The server refused the call (``ret``/``errcode`` not 0)."""

    call: str
    ret: int | None
    errcode: int | None
    errmsg: str

    def __str__(self) -> str:
        code = self.errcode if self.errcode not in (None, 0) else self.ret
        return f"{self.call} refused: code {code} {shown(self.errmsg, 120)}".rstrip()


class SessionExpired(ApiError):
    """``errcode -14``: the bot's login is no longer valid; a new QR login is needed."""


class RateLimited(ApiError):
    """``ret -2``: too many calls; nothing was done."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer's JSON, and when the server gave it by its own clock (its HTTP ``Date``
    header, in seconds since the epoch; None without a readable one)."""

    body: dict[str, Any]
    server_time: float | None


@dataclass
class ILinkApi:
    """One account's calls to one iLink server (``base_url``) and its CDN."""

    session: aiohttp.ClientSession
    base_url: str
    cdn_base_url: str
    bot_agent: str = DEFAULT_BOT_AGENT
    route_tag: str | None = None
    token: str | None = field(default=None, repr=False)
    #: the environment's proxies (``getproxies()``: HTTPS_PROXY, HTTP_PROXY), read once
    proxies: dict[str, str] = field(default_factory=dict, repr=False)

    def proxy_for(self, url: str) -> str | None:
        """The environment's proxy for ``url`` (None: direct, or NO_PROXY names its host).

        Read here rather than by aiohttp's ``trust_env``, which also reads ``~/.netrc``
        in a worker thread on every request."""
        scheme = urllib.parse.urlsplit(url).scheme
        proxy = self.proxies.get(scheme)
        host = urllib.parse.urlsplit(url).hostname or ""
        if proxy is None or urllib.request.proxy_bypass(host):  # NO_PROXY
            return None
        return proxy

    # ------------------------------------------------------------ plumbing

    def _url(self, endpoint: str, base: str | None = None) -> str:
        return _joined((base or self.base_url).rstrip("/") + "/", endpoint)

    def _common_headers(self) -> dict[str, str]:
        headers = {"iLink-App-Id": APP_ID, "iLink-App-ClientVersion": str(CLIENT_VERSION)}
        if self.route_tag:
            headers["SKRouteTag"] = self.route_tag
        return headers

    def _bot_headers(self) -> dict[str, str]:
        uin = str(secrets.randbits(32)).encode()
        headers = {
            "Content-Type": "application/json",
            "AuthorizationType": "ilink_bot_token",
            "X-WECHAT-UIN": base64.b64encode(uin).decode("ascii"),
            **self._common_headers(),
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def post(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        timeout_s: float = CALL_S,
        base_info: bool = True,
    ) -> dict[str, Any]:
        """POST ``body`` (with ``base_info`` unless told not) and return the JSON answer,
        checked."""
        answer = await self.post_answered(endpoint, body, timeout_s=timeout_s, base_info=base_info)
        return answer.body

    async def post_answered(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        timeout_s: float = CALL_S,
        base_info: bool = True,
    ) -> Answer:
        """:meth:`post`, with the server's time of its answer."""
        payload = body
        if base_info:
            info = {"channel_version": CHANNEL_VERSION, "bot_agent": self.bot_agent}
            payload = {**body, "base_info": info}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        answer = await self._call("POST", self._url(endpoint), endpoint, data, timeout_s)
        self._checked(endpoint, answer.body)
        return answer

    async def get(
        self, endpoint: str, *, base_url: str | None = None, timeout_s: float = CALL_S
    ) -> dict[str, Any]:
        """GET (the QR login's calls: no token) and return the JSON answer, checked."""
        url = self._url(endpoint, base_url)
        answer = await self._call("GET", url, endpoint, None, timeout_s)
        return self._checked(endpoint, answer.body)

    async def _call(
        self, method: str, url: str, label: str, data: bytes | None, timeout_s: float
    ) -> Answer:
        name = label.split("?")[0]
        headers = self._bot_headers() if method == "POST" else self._common_headers()
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    proxy=self.proxy_for(url),
                    timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_S),
                ) as resp:
                    raw = await _read_capped(resp, name)
                    status = resp.status
                    date = resp.headers.get("Date")
                    retry_after = "Retry-After" in resp.headers
        except aiohttp.ConnectionTimeoutError:  # (a TimeoutError too: caught before it)
            raise NotConnected(f"{name}: no connection within {CONNECT_S:g} s") from None
        except TimeoutError:
            raise TimedOut(f"{name}: no answer within {timeout_s:.0f} s") from None
        except aiohttp.ClientConnectorError as exc:  # (a proxy's own refusal too)
            raise NotConnected(
                f"{name}: {self.scrub(type(exc).__name__ + ': ' + str(exc))}"
            ) from None
        except aiohttp.ClientError as exc:
            raise Unreachable(
                f"{name}: {self.scrub(type(exc).__name__ + ': ' + str(exc))}"
            ) from None
        text = raw.decode("utf-8", "replace")
        if status >= 400:
            not_taken = status < 500 or (status == 503 and (retry_after or _ilinks(text)))
            raise BadAnswer(f"{name}: HTTP {status}: {self.excerpt(text)}", status, not_taken)
        try:
            answer = json.loads(text, parse_int=_wire_int)
        except (ValueError, RecursionError):  # (nested deeper than Python's parser goes)
            raise BadAnswer(f"{name}: the answer is not JSON: {self.excerpt(text)}") from None
        if not isinstance(answer, dict):
            raise BadAnswer(f"{name}: the answer is not a JSON object: {self.excerpt(text)}")
        return Answer(answer, http_date(date))

    def _checked(self, endpoint: str, answer: dict[str, Any]) -> dict[str, Any]:
        name = endpoint.split("?")[0]
        ret, errcode = _int(answer.get("ret")), _int(answer.get("errcode"))
        if not ret and not errcode:  # (most answers: nothing to say)
            return answer
        errmsg = self.scrub(str(answer.get("errmsg") or ""))
        if STALE_SESSION in (ret, errcode):
            raise SessionExpired(name, ret, errcode, errmsg or "session expired")
        if RATE_LIMITED in (ret, errcode):
            raise RateLimited(name, ret, errcode, errmsg or "rate limited")
        if (ret or 0) != 0 or (errcode or 0) != 0:
            raise ApiError(name, ret, errcode, errmsg)
        return answer

    def excerpt(self, text: str) -> str:
        """A bad answer as a log line may show it: short, one line, no token in it."""
        return shown(self.scrub(text.strip()) or "(empty)", 120)

    def scrub(self, text: str) -> str:
        text = _TOKEN_FIELD.sub(r'"\1":"***"', text)
        text = _TOKEN_LIST.sub(r'"\1":["***"]', text)
        if self.token:
            text = text.replace(self.token, "***")
        return text

    # ------------------------------------------------------------ login

    async def get_bot_qrcode(self, earlier_tokens: list[str]) -> dict[str, Any]:
        """A new QR code; the body is ``local_token_list`` alone (no ``base_info``), as
        Tencent's client posts it."""
        return await self.post(
            "ilink/bot/get_bot_qrcode?bot_type=3",
            {"local_token_list": earlier_tokens},
            base_info=False,
        )

    async def get_qrcode_status(
        self, qrcode: str, base_url: str, *, verify_code: str | None = None
    ) -> dict[str, Any]:
        """``verify_code``: the number the phone shows, when it asked (``need_verifycode``)."""
        fields = (
            {"qrcode": qrcode}
            if verify_code is None
            else {"qrcode": qrcode, "verify_code": verify_code}
        )
        query = urllib.parse.urlencode(fields)
        return await self.get(
            f"ilink/bot/get_qrcode_status?{query}", base_url=base_url, timeout_s=LONG_POLL_S
        )

    # ------------------------------------------------------------ messages

    async def get_updates(self, cursor: str, timeout_s: float) -> Answer:
        """The long poll; its answer with the server's time (its messages' times are on
        the server's clock)."""
        return await self.post_answered(
            "ilink/bot/getupdates", {"get_updates_buf": cursor}, timeout_s=timeout_s
        )

    async def send_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        return await self.post("ilink/bot/sendmessage", {"msg": msg}, timeout_s=CALL_S)

    async def get_config(self, user_id: str, context_token: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"ilink_user_id": user_id}
        if context_token:
            body["context_token"] = context_token
        return await self.post("ilink/bot/getconfig", body, timeout_s=LIGHT_CALL_S)

    async def send_typing(self, user_id: str, ticket: str, typing: bool) -> None:
        body = {"ilink_user_id": user_id, "typing_ticket": ticket, "status": 1 if typing else 2}
        await self.post("ilink/bot/sendtyping", body, timeout_s=LIGHT_CALL_S)

    async def notify(self, what: str) -> None:
        """``msg/notifystart`` or ``msg/notifystop``."""
        await self.post(f"ilink/bot/msg/{what}", {}, timeout_s=LIGHT_CALL_S)

    # ------------------------------------------------------------ CDN

    async def get_upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.post("ilink/bot/getuploadurl", body)

    async def upload(self, url: str, ciphertext: bytes) -> str:
        """POST the ciphertext to the CDN; the ``x-encrypted-param`` it answers with."""
        headers = {"Content-Type": "application/octet-stream"}
        try:
            async with asyncio.timeout(CALL_S + len(ciphertext) / 200_000):
                async with self.session.post(  # (a redirect is refused: not followed)
                    url,
                    data=ciphertext,
                    headers=headers,
                    proxy=self.proxy_for(url),
                    allow_redirects=False,
                ) as resp:
                    await resp.read()
                    param = resp.headers.get("x-encrypted-param")
                    status = resp.status
                    why = resp.headers.get("x-error-message") or f"HTTP {status}"
        except TimeoutError:
            raise Unreachable("CDN upload: no answer in time") from None
        except aiohttp.ClientError as exc:
            raise Unreachable(f"CDN upload: {type(exc).__name__}: {exc}") from None
        if status != 200:
            raise BadAnswer(f"CDN upload refused: {shown(why, 120)}", status)
        if not param:
            raise BadAnswer("CDN upload: the answer has no x-encrypted-param")
        return param

    def cdn_upload_url(self, upload_param: str, filekey: str) -> str:
        query = urllib.parse.urlencode({"encrypted_query_param": upload_param, "filekey": filekey})
        return f"{self.cdn_base_url.rstrip('/')}/upload?{query}"

    def cdn_download_url(self, query_param: str) -> str:
        query = urllib.parse.urlencode({"encrypted_query_param": query_param})
        return f"{self.cdn_base_url.rstrip('/')}/download?{query}"


#: a secret's field in a JSON text, its value to its closing quote or to the end of a
#: text cut before it (an answer cut short: its excerpt must not show half a token)
_TOKEN_FIELD = re.compile(r'"(bot_token|token|context_token|typing_ticket)"\s*:\s*"[^"]*"?')
#: the earlier tokens a QR login sends (an error page may echo the request)
_TOKEN_LIST = re.compile(r'"(local_token_list)"\s*:\s*\[[^\]]*\]?')


@functools.lru_cache(maxsize=256)
def _joined(base: str, endpoint: str) -> str:
    """``urljoin``, remembered: an account calls a handful of URLs again and again."""
    return urllib.parse.urljoin(base, endpoint)


#: the most digits an integer of an answer is read with; no iLink field holds more than
#: 20 (a uint64), and Python refuses to read one of over 4,300 (the whole answer would be
#: refused, and come back at every poll)
_INT_DIGITS_MAX = 40
#: what a longer integer reads as: a number no field's bounds take (wire.py), so only the
#: message holding it is skipped
OUT_OF_RANGE = 2**128


def _wire_int(digits: str) -> int:
    return int(digits) if len(digits) <= _INT_DIGITS_MAX else OUT_OF_RANGE


def _ilinks(text: str) -> bool:
    """Whether an error answer is iLink's own JSON (``ret`` or ``errcode`` in an object),
    not a proxy's page."""
    try:
        answer = json.loads(text, parse_int=_wire_int)
    except (ValueError, RecursionError):
        return False
    return isinstance(answer, dict) and ("ret" in answer or "errcode" in answer)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


async def _read_capped(resp: aiohttp.ClientResponse, name: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > MAX_ANSWER_BYTES:
            cap = MAX_ANSWER_BYTES // (1024 * 1024)
            raise BadAnswer(
                f"{name}: the answer is over {cap} MB (the most the gateway reads): not read"
            )
        chunks.append(chunk)
    return b"".join(chunks)

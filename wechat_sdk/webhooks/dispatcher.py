"""Webhooks out: the gateway's events, queued in the store and POSTed to each endpoint.

- At least once: an event is written to the store's webhook queue (one row per endpoint
  that subscribed to it) before anything else happens to it, and deleted only once its
  endpoint answered 2xx (or 410 Gone), or after its last retry. What is queued at a stop
  is sent after the next start (on the SQLite store).
- Signed per Standard Webhooks (:mod:`wechat_sdk.webhooks.signing`); the ``webhook-id`` is
  the queue row's, the same on every retry.
- Retried on any other answer (but 410), a timeout or a refused connection, on the schedule
  :data:`RETRY_SCHEDULE_S` (about 28 hours in all), then given up with an error line. An
  answer with ``Retry-After`` (seconds or an HTTP date) is retried no sooner than it says
  (capped to the schedule's longest wait), and nothing else goes to its endpoint before.
- ``410 Gone`` disables the endpoint, as Standard Webhooks asks: that event is not
  retried, the endpoint's queued events are dropped (for every gateway sharing the queue),
  and this dispatcher queues and sends nothing more to it until :meth:`resume_gone` (a
  reload of the gateway's config) or a new dispatcher (the gateway's next start).
- Each endpoint's state (delivering, retrying, failing, disabled by 410) and its last failure are
  kept in memory, per dispatcher: :meth:`status`, with what the queue holds for it.
- One task per endpoint: a slow or dead endpoint holds up nothing but its own queue, and
  the gateway's messages never wait for a webhook (queueing is a store write).
- Once across gateways: each delivery is claimed from the queue before it is POSTed
  (:meth:`~wechat_sdk.stores.base.WebhookQueue.claim_due`, for :data:`CLAIM_MARGIN_S` more
  than an attempt may take), so when several gateways share a Redis queue one of them
  POSTs it; a claim whose gateway died ends by itself and another gateway takes the
  delivery. A queue one process owns (memory, SQLite) claims trivially.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from wechat_sdk.clock import BACKGROUND, Clock
from wechat_sdk.config.integrations import WebhookEndpoint, origin_of
from wechat_sdk.events import EVENT_TYPES, iso_time
from wechat_sdk.http_date import http_date
from wechat_sdk.stores.base import WebhookDelivery, WebhookQueue
from wechat_sdk.webhooks.signing import new_message_id, signed_headers
from wechat_sdk.webhooks.status import WebhookStatus, endpoint_state

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "ATTEMPT_TIMEOUT_S",
    "CLAIM_MARGIN_S",
    "RETRY_SCHEDULE_S",
    "WebhookDispatcher",
    "event_body",
    "origin",
]

log = logging.getLogger("wechat_sdk.webhooks")

#: Seconds to wait before each attempt, the first at once: then 5 s, 5 min, 30 min, 2 h,
#: 5 h, 10 h and 10 h (the Standard Webhooks guide's schedule). After the last, given up.
RETRY_SCHEDULE_S: Final = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: An attempt that has no answer after this many seconds (real time) failed.
ATTEMPT_TIMEOUT_S: Final = 15.0
#: A claimed delivery stays the claiming gateway's for an attempt's timeout and this many
#: seconds more (room for the store's round trips and for clocks a little apart); then,
#: if that gateway died, another takes it. An idle dispatcher also looks at the queue
#: this often, for deliveries another gateway queued or left.
CLAIM_MARGIN_S: Final = 15.0
#: Seconds an endpoint's deliveries wait after the store failed.
_PAUSE_S: Final = 30.0


#: what the logs name an endpoint by: its scheme, host and port (the path and query of a
#: URL may hold a token)
origin = origin_of


def event_body(event_type: str, data: dict[str, Any], at: float) -> str:
    """The JSON payload of an event, in the Standard Webhooks shape ``{type, timestamp,
    data}`` (``timestamp``: ISO 8601, UTC, of the gateway's clock). What UTF-8 cannot
    encode (a lone surrogate: half an emoji from a cut JSON escape, in a message's text)
    is ``?``, as every store keeps it: the body must go out as UTF-8."""
    body = json.dumps(
        {"type": event_type, "timestamp": iso_time(at), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return body.encode("utf-8", "replace").decode("utf-8")


def retry_after_s(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (``120``, or an HTTP date, read
    against ``now``, epoch seconds); None when there is none or it cannot be read."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = http_date(value)
    return None if when is None else max(0.0, when - now)


class _Answer(NamedTuple):
    """How an attempt went: ``error`` is None when the endpoint took it (2xx), else why
    not; ``status`` the HTTP status when there was an answer; ``retry_after`` the seconds
    its ``Retry-After`` asked to wait, if it sent one."""

    error: str | None
    status: int | None = None
    retry_after: float | None = None


class WebhookDispatcher:
    """Queues events for the configured endpoints and delivers them, one task per endpoint.

    ``clock`` schedules the retries; ``wall_time`` stamps each attempt's
    ``webhook-timestamp`` (receivers check it against their own clock, so it is the real
    time even when the gateway runs on a virtual one). ``schedule`` replaces
    :data:`RETRY_SCHEDULE_S`; ``claim_s`` how long a claimed delivery stays this
    dispatcher's (default: ``attempt_timeout_s`` + :data:`CLAIM_MARGIN_S`; longer than
    an attempt, or another gateway may POST it too).
    """

    def __init__(
        self,
        endpoints: Sequence[WebhookEndpoint],
        queue: WebhookQueue,
        clock: Clock,
        *,
        wall_time: Callable[[], float] = time.time,
        schedule: Sequence[float] = RETRY_SCHEDULE_S,
        attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
        claim_s: float | None = None,
        shared: bool = False,
    ) -> None:
        self.endpoints = {e.url: e for e in endpoints}  # (the config lists each url once)
        #: the queue is shared with other gateways (Redis), whose configs may still list an
        #: endpoint this one does not (a rolling change of the config)
        self.shared = shared
        self.queue = queue
        self.clock = clock
        self.wall_time = wall_time
        self.schedule = tuple(schedule)
        self.attempt_timeout_s = attempt_timeout_s
        self.claim_s = attempt_timeout_s + CLAIM_MARGIN_S if claim_s is None else claim_s
        self._wake: dict[str, asyncio.Event] = {url: asyncio.Event() for url in self.endpoints}
        #: when an endpoint that answered ``Retry-After`` may be sent to again
        self._resume_at: dict[str, float] = {}
        #: the endpoints that answered ``410 Gone``, and when (the clock's time)
        self._gone: dict[str, float] = {}
        #: each endpoint's last failed attempt: why, and when (the clock's time)
        self._last_failure: dict[str, tuple[str, float]] = {}
        #: the endpoints whose last attempt failed (their events wait for a retry)
        self._failing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def gone(self) -> Mapping[str, float]:
        """The endpoints (their URLs) that answered ``410 Gone``, and when (the clock's
        time): nothing is queued for them or sent to them until :meth:`resume_gone`."""
        return dict(self._gone)

    def status(self) -> list[WebhookStatus]:
        """Each endpoint's state, in the config's order (no URL's path, query or user
        info, no secret): this dispatcher's view, and what the queue holds for it."""
        out = []
        for index, url in enumerate(self.endpoints):
            queued = self.queue.count(url)
            state = endpoint_state(
                gone=url in self._gone, failing=url in self._failing, queued=queued
            )
            why, at = self._last_failure.get(url, (None, None))
            out.append(
                WebhookStatus(
                    index=index,
                    endpoint=origin(url),
                    state=state,
                    queued=queued,
                    last_failure=why,
                    last_failure_at=at,
                )
            )
        return out

    @property
    def wanted(self) -> frozenset[str]:
        """The event types some endpoint subscribed to."""
        return frozenset(t for t in EVENT_TYPES for e in self.endpoints.values() if e.wants(t))

    # ------------------------------------------------------------ queueing

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event for every endpoint that subscribed to it (one transaction,
        durable when this returns) and wake their tasks."""
        now = self.clock.now()
        body = event_body(event_type, data, now)
        rows = [
            WebhookDelivery(url, new_message_id(), event_type, body, now, now)
            for url, endpoint in self.endpoints.items()
            if endpoint.wants(event_type) and url not in self._gone
        ]
        if not rows:
            return
        self.queue.add(rows)
        for row in rows:
            self._wake[row.endpoint].set()

    # ------------------------------------------------------------ life

    def start(self) -> None:
        """Start one delivery task per endpoint. Deliveries queued for an endpoint no
        longer configured are dropped, with a warning naming how many; on a shared queue
        only once they are older than the whole retry schedule (another gateway may still
        deliver them)."""
        configured = set(self.endpoints)
        orphans: dict[str, int] = {}
        too_old = self.clock.now() - sum(self.schedule)
        for d in self.queue.pending():
            if d.endpoint not in configured and (not self.shared or d.created_at < too_old):
                self.queue.delete(d.id)
                orphans[origin(d.endpoint)] = orphans.get(origin(d.endpoint), 0) + 1
        for where, count in orphans.items():
            log.warning(
                "%d queued webhook event(s) for %s dropped: the endpoint is no longer in "
                "channels.wechat.webhooks reason=webhook_endpoint_gone",
                count,
                where,
                extra={"account": "-"},
            )
        for url in self.endpoints:
            self._start_task(url)

    def resume_gone(self) -> None:
        """Queue and send again to the endpoints that answered ``410 Gone`` (the gateway's
        config was reloaded: the user may have fixed them). Their task ended with the
        answer, so each gets a new one."""
        gone, self._gone = self._gone, {}
        for url in gone:
            self._start_task(url)

    def _start_task(self, url: str) -> None:
        # (in a context of its own: it delivers for every account; in the context of the
        # task that started it, an account's, the lines logged in it showed that account)
        task = asyncio.get_running_loop().create_task(
            self._run(url), name=f"webhook:{origin(url)}", context=contextvars.Context()
        )
        self._tasks.append(task)

    async def close(self) -> None:
        """Stop delivering (what is queued stays queued) and close the HTTP session."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ delivering

    async def _run(self, url: str) -> None:
        BACKGROUND.set(True)  # on a virtual clock, a retry's wait keeps no world busy
        wake = self._wake[url]
        while url not in self._gone:  # (410 Gone: this endpoint's task ends)
            wake.clear()
            try:
                held = self._resume_at.get(url, 0.0) - self.clock.now()
                if held > 0:  # the endpoint said when to come back (Retry-After)
                    await self.clock.sleep(held)
                    continue
                # one at a time: a claim covers one attempt, not a batch's
                claimed = self.queue.claim_due(url, self.clock.now(), hold_s=self.claim_s)
                if not claimed:
                    await self._wait(url, wake)
                    continue
                for delivery in claimed:
                    await self._deliver(self.endpoints[url], delivery)
            except Exception as exc:  # the store failed: the queue is kept, tried again
                log.error(
                    "webhook deliveries to %s paused for %g s: %s reason=webhook_store_error",
                    origin(url),
                    _PAUSE_S,
                    exc,
                    extra={"account": "-"},
                )
                await self.clock.sleep(_PAUSE_S)

    async def _wait(self, url: str, wake: asyncio.Event) -> None:
        """Until a new event for ``url`` is queued here, its earliest delivery is due, or
        ``claim_s`` passed (other gateways sharing the queue queue events this one is not
        woken for, and a gateway that died leaves its claims to end)."""
        next_at = self.queue.next_attempt_at(url)
        now = self.clock.now()
        look_again = now + self.claim_s if next_at is None else min(next_at, now + self.claim_s)
        woken = asyncio.ensure_future(wake.wait())
        waits: set[asyncio.Future[Any]] = {
            woken,
            asyncio.ensure_future(self.clock.sleep(look_again - now)),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _deliver(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
        error, status, retry_after = await self._attempt(endpoint, delivery)
        if error is None:
            self._failing.discard(endpoint.url)
        else:
            self._last_failure[endpoint.url] = (error, self.clock.now())
            self._failing.add(endpoint.url)
        if status == HTTPStatus.GONE:
            self._disable(endpoint.url, delivery)
            return
        if retry_after is not None:  # (capped: a year's Retry-After must not park it)
            retry_after = min(retry_after, max(self.schedule))
            self._resume_at[endpoint.url] = self.clock.now() + retry_after
        if error is None:
            self.queue.delete(delivery.id)
            return
        attempts = delivery.attempts + 1
        where = origin(endpoint.url)
        if attempts >= len(self.schedule):
            self.queue.delete(delivery.id)
            log.error(
                "webhook %s (%s) to %s given up after %d attempts: %s reason=webhook_given_up",
                delivery.message_id,
                delivery.event_type,
                where,
                attempts,
                error,
                extra={"account": "-"},
            )
            return
        wait = max(self.schedule[attempts], retry_after or 0.0)
        self.queue.retry_later(
            delivery.id,
            attempts=attempts,
            next_attempt_at=self.clock.now() + wait,
            last_error=error,
        )
        log.warning(
            "webhook %s (%s) to %s failed (attempt %d/%d): %s; retrying in %g s "
            "reason=webhook_failed",
            delivery.message_id,
            delivery.event_type,
            where,
            attempts,
            len(self.schedule),
            error,
            wait,
            extra={"account": "-"},
        )

    def _disable(self, url: str, delivery: WebhookDelivery) -> None:
        """The endpoint answered ``410 Gone`` to ``delivery``: its consumer wants nothing
        more (Standard Webhooks). Its queue is dropped before the endpoint is marked gone:
        when the store fails, what it still holds for the endpoint is attempted again
        after the pause, and a 410 to that does this again."""
        self.queue.delete(delivery.id)
        others = self.queue.delete_endpoint(url)
        self._gone[url] = self.clock.now()  # (publish() queues nothing more for it)
        self._failing.discard(url)  # (nothing of it is left to retry)
        log.error(
            "webhook %s (%s) to %s answered 410 Gone: not retried, %d other queued event(s) "
            "for it dropped, and nothing more is sent to it until the gateway restarts "
            "reason=webhook_disabled",
            delivery.message_id,
            delivery.event_type,
            origin(url),
            others,
            extra={"account": "-"},
        )

    async def _attempt(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> _Answer:
        """POST one delivery, and how it went."""
        import aiohttp

        # ("replace": a row queued before event_body replaced what UTF-8 cannot encode)
        body = delivery.body.encode("utf-8", "replace")
        headers = signed_headers(endpoint.secret, delivery.message_id, body, self.wall_time())
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "wechat-sdk-webhooks"
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.attempt_timeout_s)
            )
        try:
            async with self._session.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return _Answer(None, response.status)
                retry_after = retry_after_s(response.headers.get("Retry-After"), self.wall_time())
                return _Answer(f"HTTP {response.status}", response.status, retry_after)
        except TimeoutError:
            return _Answer(f"no answer within {self.attempt_timeout_s:g} s")
        except aiohttp.ClientError as exc:
            # its text may repeat the whole URL (a token in its query): the class only
            # (the log line names the origin), and for a connection that failed, why
            cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else None
            why = f" ({cause.strerror})" if cause and cause.strerror else ""
            return _Answer(type(exc).__name__ + why)

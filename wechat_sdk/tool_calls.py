"""How a tool of the gateway's registry is run: one rule for a custom agent's
``turn.tools.call`` (:class:`~wechat_sdk.agent.AllowedTools`) and the configured
assistant's Python tools alike.

An async tool is awaited. A sync one runs in a daemon thread of its own (on the event loop
it would hold every conversation of every account while it runs), its outcome awaited:
a timeout around the await gives it up, but cannot stop the thread, so what it returns
after that is dropped (a coroutine closed unrun: left unawaited, Python would warn).

A sync function handing back an awaitable (a decorator's sync wrapper of an async
function, an object whose ``__call__`` is ``async def``) has it awaited here, on the event
loop, as an async tool: only making the coroutine happens in the thread, its body runs
on the loop (where it may use the loop, as an async tool may), under the same timeout,
and is cancelled by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from wechat_sdk.idle_loop import IdleAwareEventLoop

__all__ = ["in_own_thread", "run_tool"]


async def run_tool(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)``, run as a tool is (see the module's text)."""
    if inspect.iscoroutinefunction(func):
        return await func(*args, **kwargs)
    result = await in_own_thread(functools.partial(func, *args, **kwargs))
    if inspect.isawaitable(result):  # (a sync function handing back a coroutine)
        result = await result
    return result


async def in_own_thread(call: Callable[[], Any]) -> Any:
    """``call()`` in a daemon thread of its own (in this task's context, as
    :func:`asyncio.to_thread` would), its outcome awaited here. Not the default thread
    pool's: a tool stuck for good would keep one of the workers that media fetches share,
    and the interpreter waits for those at exit, so a stop would never end. On the
    simulator's event loop the thread's work counts as work in flight, so virtual time
    does not move on while it runs (:meth:`IdleAwareEventLoop.count_as_work`)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if outcome.done():  # (given up meanwhile: dropped)
            _drop(result)
            return
        if isinstance(error, StopIteration):  # (a future refuses it: TypeError, unsettled)
            stopped = RuntimeError("the tool raised StopIteration")
            stopped.__cause__ = error
            error = stopped
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(call)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile)
            loop.call_soon_threadsafe(settle, result, error)

    if isinstance(loop, IdleAwareEventLoop):
        loop.count_as_work(outcome)
    threading.Thread(target=work, name="wechat-sdk-tool", daemon=True).start()
    try:
        return await outcome
    except asyncio.CancelledError:
        # (given up just as it came: dropped)
        if outcome.done() and not outcome.cancelled() and outcome.exception() is None:
            _drop(outcome.result())
        raise


def _drop(result: Any) -> None:
    """Let go of what a call given up returned: a coroutine is closed, never run."""
    if inspect.iscoroutine(result):
        result.close()

"""What a failed Puppet Service call means to the port: gRPC status codes as PuppetErrors.

A call that reached no answer is :class:`NoAnswer`; an answer of ``UNAUTHENTICATED``,
``ALREADY_EXISTS`` or ``UNAVAILABLE`` is :class:`ServiceUnavailable` (:func:`service_error`).
A failed send says whether it may have gone out and whether to try it again
(:func:`send_error`).
"""

from __future__ import annotations

import grpc

from wechat_sdk.puppet import PuppetError, SendError, SendOutcomeUnknown

__all__ = [
    "OUTCOME_UNKNOWN",
    "PERMANENT",
    "NoAnswer",
    "ServiceUnavailable",
    "send_error",
    "service_error",
]

#: gRPC status codes after which a send may or may not have happened
OUTCOME_UNKNOWN = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
}
#: gRPC status codes after which trying the same call again would fail the same way
PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class ServiceUnavailable(PuppetError):
    """The Puppet Service could not be reached or refused the connection."""


class NoAnswer(PuppetError):
    """A call ended without an answer: its deadline passed, or a stop closed the channel."""


def service_error(exc: grpc.aio.AioRpcError, endpoint: str) -> PuppetError:
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return ServiceUnavailable(
            f"the Puppet Service at {endpoint} refused the token (UNAUTHENTICATED): "
            "check channels.wechat.puppetOptions.token"
        )
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return ServiceUnavailable(
            f"the Puppet Service at {endpoint} already serves another client's event stream "
            "(ALREADY_EXISTS): only one gateway may use a token at a time"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServiceUnavailable(
            f"the Puppet Service at {endpoint} is unavailable: {exc.details()}"
        )
    return PuppetError(f"{code.name}: {exc.details()}")


def send_error(exc: grpc.aio.AioRpcError) -> PuppetError:
    code = exc.code()
    text = f"{code.name}: {exc.details()}"
    if code in OUTCOME_UNKNOWN:
        return SendOutcomeUnknown(text)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return SendError(text, transient=True, code="rate_limited")
    return SendError(text, transient=code not in PERMANENT)

"""The HTTP API's request and response bodies: pydantic models, validated on the way in,
and the source of the OpenAPI document's schemas (:mod:`wechat_sdk.http.openapi`).

Key names are camelCase, as in the config and the webhook events.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from wechat_sdk.config.accounts import asked_account_id
from wechat_sdk.config.integrations import http_url, without_credentials
from wechat_sdk.puppet import voice_length_problem
from wechat_sdk.webhooks.status import STATE_MEANINGS, EndpointState

#: an account id in a request: any case, spaces around it dropped, as on the CLI
AskedAccountId = Annotated[str, AfterValidator(asked_account_id)]
#: a contact or room id in a request: spaces around it dropped, none left is no id
WeChatId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
#: the most text one send takes: a longer one (thousands of paced messages, for hours
#: after the caller gave up) goes as a file
MAX_SEND_TEXT_CHARS = 100_000

__all__ = [
    "Account",
    "AccountList",
    "ApproveRequest",
    "Approved",
    "Denied",
    "DenyRequest",
    "ErrorBody",
    "FileIn",
    "Health",
    "MessageRequest",
    "MessageSent",
    "PairingList",
    "PairingRequestOut",
    "Readiness",
    "ReadinessAccount",
    "VerifyCodeAnswer",
    "VerifyCodeRequest",
    "WebhookEndpointOut",
    "WebhookList",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FileIn(_In):
    """A file to send: by ``url`` (http or https; fetched by the gateway, capped at
    ``mediaMaxMb``) or by ``data`` (base64)."""

    name: str = Field(min_length=1, max_length=255, description="file name shown in WeChat")
    kind: Literal["image", "video", "audio", "file"] = Field(
        "file", description="how WeChat shows it (audio: a voice message, needs durationS)"
    )
    url: str | None = Field(
        None, description="where the gateway downloads it from (an http or https URL)"
    )
    data: str | None = Field(
        None, description="its bytes, base64 (in lines or not, as base64 tools write it)"
    )
    mime: str | None = Field(None, description="MIME type (guessed from the name if unset)")
    durationS: float | None = Field(
        None, gt=0, description="length of a voice or video, in seconds (a voice needs it)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # (a URL no client can fetch is the caller's to fix: refused before anything goes)
        return None if url is None else without_credentials(http_url(url))

    @model_validator(mode="after")
    def _one_source(self) -> FileIn:
        if (self.url is None) == (self.data is None):
            raise ValueError("give the file's url or its data (base64), one of them")
        # (checked here, not only when the file goes: the text of the request would go
        # out before its file failed)
        voice_problem = voice_length_problem(self.kind, self.durationS, key="durationS")
        if voice_problem is not None:
            raise ValueError(voice_problem)
        return self


class MessageRequest(_In):
    """``POST /v1/messages``: text and files to a contact or a group.

    ``to`` is a contact id (a DM) or a room id (a group). With ``room``, the message goes
    to that group and mentions ``to``, a member of it.
    """

    to: WeChatId = Field(description="contact id, or room id")
    room: WeChatId | None = Field(None, description="room id: send in this group, mentioning `to`")
    account: AskedAccountId | None = Field(
        None, description="the account that sends (default: the default account); any case"
    )
    text: str | None = Field(
        None,
        max_length=MAX_SEND_TEXT_CHARS,
        description="text; long text goes in several messages (at most 100,000 characters: "
        "send a longer one as a file)",
    )
    files: list[FileIn] = Field(
        default_factory=list, description="files, each its own message, after the text"
    )

    @model_validator(mode="after")
    def _something(self) -> MessageRequest:
        if not (self.text and self.text.strip()) and not self.files:
            raise ValueError("give text or files (or both): there is nothing to send")
        return self


class MessageSent(BaseModel):
    """What went out."""

    accountId: str
    conversationId: str
    text: str = Field(description="the text that went out (as sent: formatted, joined)")
    files: int = Field(description="files sent")
    waiting: int = Field(
        0,
        description="messages an iLink reply window did not take: they go out after the "
        "user's next message",
    )


class ErrorBody(BaseModel):
    """Every error: what went wrong (``error``, saying what to change) and a code."""

    error: str
    code: str = Field(
        description="unauthorized, not_found, method_not_allowed, invalid_request, "
        "body_too_large, account_not_running, account_not_ready, window_closed, "
        "delivery_failed, idempotency_key_reused, request_in_progress, pairing_error, "
        "verify_code_not_asked, verify_code_not_supported, gateway_stopping, "
        "store_unavailable, internal"
    )
    sent: str | None = Field(
        None, description="on a failed send: the text that went out before it failed"
    )
    sentFiles: list[str] | None = Field(
        None, description="on a failed send: the names of the files that went out before it"
    )


class Account(BaseModel):
    """One account's status (no secrets)."""

    accountId: str
    enabled: bool
    lifecycle: str
    state: str = Field(description="the lifecycle with its detail")
    userId: str | None
    userName: str | None
    qrUrl: str | None = Field(description="the QR code to scan, while waiting for one")
    lastInbound: float | None
    lastOutbound: float | None
    queueDepth: int
    sent: int
    sendFailures: int
    pendingPairing: int
    lastError: str | None


class AccountList(BaseModel):
    accounts: list[Account]


class WebhookEndpointOut(BaseModel):
    """One webhook endpoint's state: named by its origin only (its path, query and user
    info may hold a token; its secret never shows)."""

    index: int = Field(description="its place in channels.wechat.webhooks (from 0)")
    endpoint: str = Field(description="its scheme, host and port")
    state: EndpointState = Field(
        description="; ".join(f"{state}: {meaning}" for state, meaning in STATE_MEANINGS.items())
    )
    queued: int = Field(description="its events waiting in the store's webhook queue")
    lastFailure: str | None = Field(
        description="why its last failed attempt failed (HTTP 503, no answer within 15 s...)"
    )
    lastFailureAt: float | None = Field(
        description="when that was (epoch seconds); this gateway's, since it started"
    )


class WebhookList(BaseModel):
    webhooks: list[WebhookEndpointOut]


class PairingRequestOut(BaseModel):
    """A pending pairing request."""

    code: str
    accountId: str
    senderId: str
    senderName: str
    createdAt: float
    expiresAt: float


class PairingList(BaseModel):
    requests: list[PairingRequestOut]


class ApproveRequest(_In):
    """``POST /v1/pairing/{code}/approve`` (the body is optional)."""

    account: AskedAccountId | None = Field(
        None, description="refuse a code of another account; any case"
    )
    notify: bool = Field(False, description="tell the sender they were approved")


class DenyRequest(_In):
    """``POST /v1/pairing/{code}/deny`` (the body is optional)."""

    account: AskedAccountId | None = Field(
        None, description="refuse a code of another account; any case"
    )


class Approved(BaseModel):
    accountId: str
    senderId: str
    approvedAt: float
    notified: bool = Field(
        description=(
            "the sender was told (asked with notify, and the account they wrote to was ready)"
        )
    )


class Health(BaseModel):
    """``GET /healthz``."""

    status: Literal["ok"]


class ReadinessAccount(BaseModel):
    account: str
    enabled: bool
    lifecycle: str
    state: str


class Readiness(BaseModel):
    """``GET /readyz`` (200 when ready, 503 when not)."""

    ready: bool
    accounts: list[ReadinessAccount]
    reason: str | None = Field(None, description="why not ready")


class Denied(BaseModel):
    code: str
    accountId: str
    senderId: str


class VerifyCodeRequest(_In):
    """``POST /v1/accounts/{id}/login/verify-code``: the number the phone shows, for an
    iLink login that asks for it (the account's state says ``enter the number the phone
    shows``)."""

    code: str = Field(description="the number the phone shows, e.g. 123456")

    @field_validator("code")
    @classmethod
    def _digits(cls, code: str) -> str:
        from wechat_sdk.puppet import verify_number

        return verify_number(code)


class VerifyCodeAnswer(BaseModel):
    """What became of the number."""

    accountId: str
    outcome: Literal["accepted", "wrong", "blocked", "expired", "pending"] = Field(
        description="accepted: the login goes on; wrong: not the number the phone shows "
        "(give the right one); blocked: too many wrong ones, a new QR code follows; expired: "
        "the QR code expired first, a new one follows; pending: the login has not answered "
        "yet (see GET /v1/accounts)"
    )
    message: str = Field(description="the outcome in words")

"""Pairing: codes, pending requests, approvals (see ``docs/pairing.md``)."""

from __future__ import annotations

from wechat_sdk.pairing.codes import ALPHABET, CODE_LENGTH, new_code, normalize_code
from wechat_sdk.pairing.service import (
    DEFAULT_MAX_PENDING,
    DEFAULT_TTL_S,
    Challenge,
    NoPendingRequest,
    Pairing,
    PairingError,
    approve_command,
    approved_message,
    owner_notice,
    pairing_message,
)

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TTL_S",
    "Challenge",
    "NoPendingRequest",
    "Pairing",
    "PairingError",
    "approve_command",
    "approved_message",
    "new_code",
    "normalize_code",
    "owner_notice",
    "pairing_message",
]

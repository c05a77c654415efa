"""Pairing codes: 8 characters from an alphabet without look-alikes (no 0/O/1/I)."""

from __future__ import annotations

import random
import secrets
from collections.abc import Container
from typing import Final

__all__ = ["ALPHABET", "CODE_LENGTH", "new_code", "normalize_code"]

#: Upper-case letters and digits, minus 0, O, 1 and I.
ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

#: Characters per code (32**8, about 10**12 codes).
CODE_LENGTH: Final = 8

_MAX_ATTEMPTS: Final = 1000


def normalize_code(s: str) -> str:
    """The canonical form of a code typed by a person: stripped, upper case."""
    return s.strip().upper()


def new_code(taken: Container[str], rng: random.Random | None = None) -> str:
    """A fresh code from a cryptographic RNG that is not in ``taken`` (the pending codes).

    ``taken`` is checked with the upper-case code, the form stores keep. ``rng`` replaces
    the cryptographic RNG only in the simulator, whose transcripts must be reproducible.
    """
    choice = rng.choice if rng is not None else secrets.choice
    for _ in range(_MAX_ATTEMPTS):
        code = "".join(choice(ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code
    raise RuntimeError("could not find a free pairing code")  # pragma: no cover

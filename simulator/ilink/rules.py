"""The reply window of an iLink bot, per user, as the real server enforces it.

The user must write first; after each user message the bot may send at most
:data:`REPLIES_PER_USER_MESSAGE` messages, and nothing once :data:`WINDOW_S` seconds have
passed since that user message. The bot's own messages never renew the window. Time is
the world's (a user message counts from when it was said).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REPLIES_PER_USER_MESSAGE", "WINDOW_S", "ReplyWindow"]

#: bot messages allowed after one user message
REPLIES_PER_USER_MESSAGE = 10
#: seconds after the user's last message during which the bot may write (24 h)
WINDOW_S = 24 * 3600.0


@dataclass
class ReplyWindow:
    """One user's window with one bot."""

    last_user_at: float | None = None
    sent_since: int = 0

    def user_wrote(self, at: float) -> None:
        """A user message said at ``at`` opens the window again (a later one wins)."""
        if self.last_user_at is None or at >= self.last_user_at:
            self.last_user_at = at
            self.sent_since = 0

    def refusal(self, now: float) -> str | None:
        """Why a bot message now would be refused, or None when it may go."""
        if self.last_user_at is None:
            return "reply window closed: the user has not written to the bot"
        if now - self.last_user_at > WINDOW_S:
            return "reply window closed: the user has not written in 24 h"
        if self.sent_since >= REPLIES_PER_USER_MESSAGE:
            return (
                f"reply window closed: {REPLIES_PER_USER_MESSAGE} replies already sent since "
                "the user's last message"
            )
        return None

    def bot_sent(self) -> None:
        self.sent_since += 1

    def remaining(self, now: float) -> int:
        """Bot messages still allowed now."""
        if self.refusal(now) is not None:
            return 0
        return REPLIES_PER_USER_MESSAGE - self.sent_since

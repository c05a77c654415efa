"""The WeChat ids of a gateway's accounts: a message from one of them is no user's.

WeChat gives a group's messages to every member, bot accounts too: two accounts of one
gateway in one group each get the other's replies, and answering them, each would answer
the other for ever (a DM from one to the other, the same). The inbound pipeline asks here
whether a sender is another account of the gateway. An account's id is noted at each login
(and kept past a logout, as the echo ledger keeps the account's own); in a cluster, the ids
of the accounts other gateways hold are read from the statuses they write to Redis.

Example:
    ```python
    own = OwnAccounts()
    own.logged_in("work", "wxid_work_bot")
    assert own.account_of("wxid_work_bot") == "work"
    ```
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["OwnAccounts"]


class OwnAccounts:
    """Each account's WeChat id, as it last logged in, and the account of each id."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}  # account id -> its WeChat id
        self._accounts: dict[str, str] = {}  # WeChat id -> account id

    def logged_in(self, account_id: str, wechat_id: str) -> None:
        """The account ``account_id`` is logged in as ``wechat_id`` (an id it had before,
        as another WeChat user, is no longer its own)."""
        before = self._ids.get(account_id)
        if before == wechat_id:
            return
        if before is not None and self._accounts.get(before) == account_id:
            del self._accounts[before]
        self._ids[account_id] = wechat_id
        self._accounts[wechat_id] = account_id

    def account_of(self, wechat_id: str) -> str | None:
        """The account logged in as ``wechat_id``, if it is one of the gateway's."""
        return self._accounts.get(wechat_id)

    def keep_only(self, account_ids: Collection[str]) -> None:
        """Forget the accounts not among ``account_ids`` (a new config has no others): the
        WeChat user of one is nobody's bot now."""
        for account_id in [a for a in self._ids if a not in account_ids]:
            wechat_id = self._ids.pop(account_id)
            if self._accounts.get(wechat_id) == account_id:
                del self._accounts[wechat_id]

"""Which failures of a lease-held account's work count as Redis being out of reach (the
account is handed over once Redis answers, so that what its work could not write goes
on): Redis's own errors, not an agent's timeout or a local file's error."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wechat_sdk.stores.redis.fencing import Fence


def fence(told: list[str]) -> Fence:
    return Fence("default", "lease:default", "gw-1:1", on_failed=lambda: told.append("outage"))


@pytest.mark.parametrize(
    "error",
    [RedisConnectionError("refused"), RedisTimeoutError("timed out"), ReadOnlyError("READONLY")],
)
def test_a_turn_broken_by_redis_out_of_reach_is_an_outage(error: Exception) -> None:
    told: list[str] = []
    fence(told).broke_turn(error)
    assert told == ["outage"]


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("the agent did not answer"),  # (an OSError: a write's would count)
        ConnectionResetError("the model's server hung up"),
        PermissionError("a media file"),
        ResponseError("WRONGTYPE"),  # Redis answered: no outage
    ],
)
def test_a_turn_broken_by_anything_else_is_not(error: Exception) -> None:
    told: list[str] = []
    fence(told).broke_turn(error)
    assert told == []

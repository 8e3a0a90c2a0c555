"""Several hosts on one Redis queue: three workers, one killed, the server SIGKILLed and restarted from
its append-only file; nothing lost or doubled (the simulation: tests/system/multihost.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from retryq.stores.redis import RedisStore

from .. import redis_server
from ..conftest import RedisServer
from .multihost import simulate

pytestmark = [pytest.mark.slow, pytest.mark.redis]

JOBS = 600


def test_three_hosts_one_killed_and_a_server_crash_lose_nothing_and_never_overlap(
    tmp_path: Path, retryq_bin: str, own_redis: Callable[..., RedisServer]
) -> None:
    server = own_redis()
    directory = server.directory
    assert directory is not None
    url = f"{server.url}?namespace=multihost"

    def crash_and_restart() -> None:
        redis_server.kill(directory)  # a crash: no shutdown, only what the append-only file holds
        redis_server.restart(directory)

    result = simulate(
        tmp_path,
        retryq_bin,
        queue=url,
        open_store=lambda: RedisStore(url),
        restart=crash_and_restart,
        jobs=JOBS,
        batch=100,
    )
    print(result.describe(JOBS, "redis-server SIGKILLed and restarted from its append-only file"))

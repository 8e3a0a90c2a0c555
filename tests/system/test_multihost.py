"""Several hosts on one PostgreSQL queue: three workers, one killed, the server restarted; nothing lost or
doubled (the simulation: tests/system/multihost.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retryq.stores.postgres import PostgresStore

from .. import postgres_cluster
from ..conftest import PostgresServer
from ..helpers import unavailable
from .multihost import simulate

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

JOBS = 300


def test_three_hosts_one_killed_and_a_server_restart_lose_nothing_and_never_overlap(
    tmp_path: Path, retryq_bin: str, postgres_server: PostgresServer, postgres_queue: str, postgres_schema: str
) -> None:
    cluster = postgres_server.directory
    if cluster is None:
        unavailable("the multi-host test restarts the server: set RETRYQ_TEST_POSTGRES_DIR to its cluster directory")
    result = simulate(
        tmp_path,
        retryq_bin,
        queue=postgres_queue,
        open_store=lambda: PostgresStore(postgres_queue, schema=postgres_schema),
        restart=lambda: postgres_cluster.restart(cluster),
        jobs=JOBS,
        batch=60,
    )
    print(result.describe(JOBS, "server restarted (pg_ctl restart)"))

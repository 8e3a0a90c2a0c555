"""Moving a queue between the file, PostgreSQL and Redis: export and import round trips, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ..helpers import invoke
from .test_transfer import exported, file_queue

pytestmark = pytest.mark.redis


@pytest.mark.postgres
def test_json_to_postgresql_to_redis_and_back_changes_nothing(
    tmp_path: Path, cli: CliRunner, postgres_queue: str, redis_queue: str
) -> None:
    source = tmp_path / "q.json"
    file_queue(source)
    dump = exported(cli, str(source), tmp_path / "dump.jsonl")
    assert invoke(cli, "--queue", postgres_queue, "import", str(tmp_path / "dump.jsonl")).exit_code == 0
    from_postgres = exported(cli, postgres_queue, tmp_path / "from-postgres.jsonl")
    assert invoke(cli, "--queue", redis_queue, "import", str(tmp_path / "from-postgres.jsonl")).exit_code == 0
    from_redis = exported(cli, redis_queue, tmp_path / "from-redis.jsonl")
    assert from_postgres == dump
    assert from_redis == dump
    back = tmp_path / "back.json"
    assert invoke(cli, "--queue", str(back), "import", str(tmp_path / "from-redis.jsonl")).exit_code == 0
    assert back.read_bytes() == source.read_bytes()


def test_an_import_that_clashes_adds_nothing(tmp_path: Path, cli: CliRunner, redis_queue: str) -> None:
    source = tmp_path / "q.json"
    file_queue(source)
    exported(cli, str(source), tmp_path / "dump.jsonl")
    assert invoke(cli, "--queue", redis_queue, "schedule", "balthazar", "2025-12-19", "5").exit_code == 0
    clash = invoke(cli, "--queue", redis_queue, "import", str(tmp_path / "dump.jsonl"))
    assert clash.exit_code != 0
    assert "nothing imported" in clash.stderr
    listed = invoke(cli, "--queue", redis_queue, "list", "--json")
    assert listed.stdout.count('"clientId"') == 1  # only the job scheduled before

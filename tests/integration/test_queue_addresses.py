"""The command with a queue address it cannot use: one line, exit 78, no password, no file created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq.record.errors import ConfigError

from ..helpers import invoke

SECRET = "s3cr3t-Pa55"

ADDRESSES = {
    "sqlalchemy's form": (f"postgresql+psycopg://user:{SECRET}@db/jobs", "did you mean postgresql://?"),
    "upper-case scheme": (f"POSTGRESQL://user:{SECRET}@db:abc/jobs", "port 'abc' is not a number"),
    "one slash": (f"postgres:/user:{SECRET}@db/jobs", "not a valid PostgreSQL address"),
    "unclosed ipv6": (f"postgresql://user:{SECRET}@[::1/jobs", "not a valid PostgreSQL address"),
    "unknown scheme": (f"mysql://user:{SECRET}@db/jobs", "known: file, postgres, postgresql"),
    "reserved schema": (f"postgresql://user:{SECRET}@db/jobs?options=-csearch_path%3Dpg_catalog", "pg_catalog"),
    "file url elsewhere": ("file://otherhost/var/queue.json", "names a file of this host"),
}


@pytest.mark.parametrize("case", sorted(ADDRESSES))
@pytest.mark.parametrize("given", ["option", "environment", "config"])
def test_an_address_that_cannot_be_used_is_one_line_and_exit_78(cli: CliRunner, case: str, given: str) -> None:
    address, says = ADDRESSES[case]
    env = {"RETRYQ_QUEUE": address} if given == "environment" else None
    args = ["--queue", address] if given == "option" else []
    if given == "config":
        Path("retryq.toml").write_text(f'queue = "{address}"\n')
    result = invoke(cli, *args, "list", env=env)
    assert result.exit_code == 78, result.output
    assert result.stderr.startswith("retryq: error: ")
    assert says in result.stderr
    assert result.stderr.count("\n") == 1
    assert SECRET not in result.stdout + result.stderr
    assert sorted(os.listdir()) == (["retryq.toml"] if given == "config" else [])  # nothing taken for a file


def test_a_file_url_names_the_file(cli: CliRunner, tmp_path: Path) -> None:
    address = (tmp_path / "queue.json").as_uri()
    assert invoke(cli, "--queue", address, "schedule", "balthazar", "2025-12-19", "60").exit_code == 0
    assert (tmp_path / "queue.json").exists()
    assert "balthazar" in invoke(cli, "--queue", str(tmp_path / "queue.json"), "list").stdout


@pytest.mark.parametrize("key", ["schema", "namespace"])
def test_a_namespace_beside_a_file_queue_is_ignored_with_one_warning(
    cli: CliRunner, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The migration recipe: a configuration written for the database, the file named on the command line."""
    Path("retryq.toml").write_text(f'{key} = "jobs_a"\n')
    scheduled = invoke(cli, "--queue", "old.json", "schedule", "balthazar", "2025-12-19", "60")
    assert scheduled.exit_code == 0, scheduled.output
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "namespace 'jobs_a' is for a queue on a server; the queue file old.json has none: ignored")
    ]
    exported = invoke(cli, "--queue", "old.json", "export")
    assert exported.exit_code == 0
    assert '"clientId": "balthazar"' in exported.stdout


def test_namespace_and_its_alias_schema_are_not_given_both(cli: CliRunner) -> None:
    Path("retryq.toml").write_text('namespace = "a"\nschema = "b"\n')
    result = invoke(cli, "list")
    assert (result.exit_code, result.stderr) == (
        78,
        "retryq: error: retryq.toml: schema: give `namespace` or `schema`, not both\n",
    )


def test_the_namespace_comes_from_the_file_then_the_environment() -> None:
    from retryq import load_config

    Path("retryq.toml").write_text('queue = "postgresql://retryq@db/jobs"\nschema = "billing"\n')
    assert load_config(env={}).namespace == "billing"
    assert load_config(env={"RETRYQ_NAMESPACE": "billing_b"}).namespace == "billing_b"  # what a workflow is given
    Path("retryq.toml").write_text('namespace = "billing:eu"\n')  # a key prefix of another backend
    assert load_config(env={}).namespace == "billing:eu"
    Path("retryq.toml").write_text('namespace = "two words"\n')
    with pytest.raises(ConfigError, match="namespace"):
        load_config(env={})

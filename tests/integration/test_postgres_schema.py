"""The PostgreSQL queue's tables: created on first use, versioned, safe when hosts start at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from retryq.record.errors import ConfigError
from retryq.stores.postgres import PostgresStore
from retryq.stores.postgres.schema import SCHEMA_VERSION

from ..helpers import make_job

pytestmark = pytest.mark.postgres


def version(url: str, schema: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(f"SELECT value FROM {schema}.meta WHERE key = 'version'").fetchone()  # noqa: S608
    return None if row is None else str(row[0])


def test_the_tables_are_made_on_first_use_and_the_version_recorded(postgres_url: str, postgres_schema: str) -> None:
    store = PostgresStore(postgres_url, schema=postgres_schema)
    assert store.load() == []
    assert version(postgres_url, postgres_schema) == str(SCHEMA_VERSION)
    assert (
        store.check()[0].message == f"queue: database reachable, schema {postgres_schema} at version {SCHEMA_VERSION}"
    )
    store.close()


def test_doctor_warns_when_the_server_may_lose_what_it_acknowledged(postgres_url: str, postgres_schema: str) -> None:
    # The test cluster runs with fsync off; this session also commits without waiting for its WAL.
    url = f"{postgres_url}?options=-c%20synchronous_commit%3Doff"
    store = PostgresStore(url, schema=postgres_schema)
    with psycopg.connect(postgres_url) as connection:
        fsync = connection.execute("SHOW fsync").fetchone()
    warnings = [finding.message for finding in store.check() if finding.level == "warning"]
    store.close()
    assert "queue: the server runs with synchronous_commit = off: a crash of the server can lose the last" in " ".join(
        warnings
    )
    assert any("fsync = off" in message for message in warnings) == (fsync == ("off",))


def test_hosts_starting_at_once_make_the_tables_once(postgres_url: str, postgres_schema: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def first_use(number: int) -> None:
        store = PostgresStore(postgres_url, schema=postgres_schema)
        try:
            start.wait(timeout=60)
            store.add(make_job(id=f"j{number}", client_id=f"c{number}"), lambda job: job)
        except BaseException as error:
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=first_use, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(PostgresStore(postgres_url, schema=postgres_schema).load()) == 8


def test_a_schema_newer_than_this_retryq_is_refused_and_left_alone(postgres_url: str, postgres_schema: str) -> None:
    PostgresStore(postgres_url, schema=postgres_schema).load()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"UPDATE {postgres_schema}.meta SET value = '99' WHERE key = 'version'")  # noqa: S608
    with pytest.raises(ConfigError, match=f"schema {postgres_schema} is at version 99, newer than this retryq"):
        PostgresStore(postgres_url, schema=postgres_schema).load()
    assert version(postgres_url, postgres_schema) == "99"


def test_a_schema_without_its_version_is_brought_up_to_date(postgres_url: str, postgres_schema: str) -> None:
    """As a schema made by hand, or by a first run killed between its statements, would be."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {postgres_schema}")
        connection.execute(f"CREATE TABLE {postgres_schema}.meta (key text PRIMARY KEY, value text)")
    store = PostgresStore(postgres_url, schema=postgres_schema)
    store.add(make_job(), lambda job: job)
    assert version(postgres_url, postgres_schema) == str(SCHEMA_VERSION)
    store.close()


def test_a_queue_at_version_1_gains_the_state_table_and_keeps_its_jobs(
    postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 2 adds the table of state documents; a queue made by the retryq before it is upgraded in place."""
    from retryq.stores import Plan, PlanResult
    from retryq.stores.postgres import schema

    with monkeypatch.context() as older:
        older.setattr(schema, "SCHEMA_VERSION", 1)
        store = PostgresStore(postgres_url, schema=postgres_schema)
        assert store.load() == []
        store.close()
    insert_as_version_1(postgres_url, postgres_schema, "kept")
    assert version(postgres_url, postgres_schema) == "1"
    store = PostgresStore(postgres_url, schema=postgres_schema)
    assert [job.id for job in store.load()] == ["kept"]
    assert version(postgres_url, postgres_schema) == str(SCHEMA_VERSION)
    store.update({}, plan=Plan(["k"], lambda docs, now, jobs: PlanResult(writes={"k": {"v": 1}})))
    assert store.state() == {"k": {"v": 1}}
    store.close()


def insert_as_version_1(url: str, schema: str, ident: str, **fields: object) -> None:
    """A row as the retryq of schema version 1 (or 2) wrote it: the columns of that version, the record as it was."""
    from retryq.stores.postgres.queries import values_of

    values = values_of(make_job(id=ident, **fields))
    record = {key: value for key, value in values["record"].obj.items() if key != "priority"}
    values = {**values, "record": psycopg.types.json.Json(record)}
    columns = [name for name in values if name != "priority"]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            f"INSERT INTO {schema}.jobs ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({', '.join(f'%({name})s' for name in columns)})",
            values,
        )


def test_a_queue_at_version_2_gains_priorities_and_its_jobs_are_priority_0(
    postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 3 adds the priority column and the index that serves the claim order, in place."""
    from datetime import timedelta

    from retryq.record.models import Owner
    from retryq.stores import Claimant, ClaimRequest
    from retryq.stores.postgres import schema

    from ..helpers import T0

    with monkeypatch.context() as older:
        older.setattr(schema, "SCHEMA_VERSION", 2)
        store = PostgresStore(postgres_url, schema=postgres_schema)
        assert store.load() == []
        store.close()
    insert_as_version_1(postgres_url, postgres_schema, "old", execute_at=T0)
    assert version(postgres_url, postgres_schema) == "2"
    store = PostgresStore(postgres_url, schema=postgres_schema)
    [old] = store.load()
    assert (old.id, old.priority, "priority" in old.to_json_dict()) == ("old", 0, True)
    assert version(postgres_url, postgres_schema) == "3"
    store.add(make_job(id="new", client_id="other", execute_at=T0 + timedelta(minutes=5), priority=5), lambda j: j)
    claimant = Claimant(Owner(host="h", pid=1), T0, {"default": timedelta(minutes=5)}, {"default": 3})
    claimed, _ = store.claim(ClaimRequest(due_by=T0, limit=2, claimant=claimant, slots={"default": 2}))
    assert [job.id for job in claimed] == ["new", "old"]  # the server's clock is long past T0: both are due
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        indexes = connection.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (postgres_schema,))
        assert "jobs_due_by_priority" in {row[0] for row in indexes}
    store.close()

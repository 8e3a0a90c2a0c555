"""Database errors a retry cannot mend are configuration errors at once (exit 78); only a server out of
reach is temporary (exit 75), and a worker started while it is down waits for it. Against the real server:
roles and databases made by the test, with names of their own."""

from __future__ import annotations

import re
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from retryq import Processor, RetryQueue
from retryq.record.errors import ConfigError, ExitCode, StoreUnavailable
from retryq.stores.postgres import PostgresStore

from .. import postgres_cluster
from ..helpers import FakeWorkflow, invoke, make_config, process, unavailable

pytestmark = pytest.mark.postgres

SECRET = "s3cr3t-Pa55"


def address(server: str, *, user: str | None = None, password: str | None = None, database: str | None = None) -> str:
    """The server's URL with another user, password or database."""
    parts = urlsplit(server)
    host = parts.netloc.rsplit("@", 1)[1]
    name = user or parts.username or ""
    userinfo = name + (f":{password}" if password is not None else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", f"/{database}" if database else parts.path, "", ""))


@pytest.fixture
def admin(postgres_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def role(admin: psycopg.Connection[tuple[object, ...]], postgres_url: str) -> Iterator[tuple[str, str]]:
    """A role that logs in with its password (a member of the cluster's password group), and its password."""
    name, password = f"retryq_role_{uuid.uuid4().hex[:10]}", f"right-{uuid.uuid4().hex[:10]}"
    group = sql.Identifier(postgres_cluster.PASSWORD_GROUP)
    with suppress(psycopg.errors.DuplicateObject):
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
    create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}")
    admin.execute(create.format(sql.Identifier(name), sql.Literal(password), group))
    try:
        with psycopg.connect(address(postgres_url, user=name, password="not-" + password)):
            unavailable("this PostgreSQL server accepts any password (its pg_hba.conf trusts loopback)")
    except psycopg.OperationalError:
        pass
    yield name, password
    admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def refused_at_once(url: str) -> ConfigError:
    """The error of the first operation on ``url``, which must come without a single retry."""
    sleeps: list[float] = []
    store = PostgresStore(url, sleep=sleeps.append)
    try:
        with pytest.raises(ConfigError) as raised:
            store.load()
    finally:
        store.close()
    assert sleeps == [], "a permanent error was tried again"
    assert raised.value.exit_code == ExitCode.CONFIG
    assert "\n" not in str(raised.value)
    return raised.value


def test_a_wrong_password_is_a_configuration_error(role: tuple[str, str], postgres_url: str) -> None:
    name, _ = role
    error = refused_at_once(address(postgres_url, user=name, password=SECRET))
    assert f'password authentication failed for user "{name}"' in str(error)
    assert SECRET not in str(error)


def test_a_role_that_does_not_exist_is_a_configuration_error(postgres_url: str) -> None:
    name = f"retryq_nobody_{uuid.uuid4().hex[:10]}"
    error = refused_at_once(address(postgres_url, user=name, password=SECRET))
    assert f'role "{name}" does not exist' in str(error)
    assert SECRET not in str(error)


def test_a_database_that_does_not_exist_is_a_configuration_error(postgres_url: str) -> None:
    name = f"retryq_nowhere_{uuid.uuid4().hex[:10]}"
    assert f'database "{name}" does not exist' in str(refused_at_once(address(postgres_url, database=name)))


def test_a_role_without_the_privileges_retryq_needs_is_told_what_to_grant(
    role: tuple[str, str], postgres_url: str
) -> None:
    name, password = role  # may connect, may not create a schema
    error = refused_at_once(address(postgres_url, user=name, password=password))
    assert "permission denied for database" in str(error)
    assert "GRANT CREATE ON DATABASE" in str(error)
    assert password not in str(error)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong password", "password authentication failed"),
        ("no such database", "does not exist"),
        ("port", "is not a number"),
        ("schema", "pg_catalog"),
    ],
)
def test_the_command_exits_78_at_once_with_one_line(
    cli: CliRunner, role: tuple[str, str], postgres_url: str, case: str, says: str
) -> None:
    name, password = role
    urls = {
        "wrong password": address(postgres_url, user=name, password=SECRET),
        "no such database": address(postgres_url, password=SECRET, database=f"retryq_nowhere_{uuid.uuid4().hex[:8]}"),
        "port": address(postgres_url, password=SECRET).replace(f":{urlsplit(postgres_url).port}/", ":5432x/"),
        "schema": address(postgres_url, user=name, password=password) + "?options=-csearch_path%3Dpg_catalog",
    }
    result = invoke(cli, "--queue", urls[case], "list")
    assert result.exit_code == 78, result.output
    assert result.stderr.count("\n") == 1
    assert says in result.stderr
    assert SECRET not in result.output
    assert password not in result.output


def test_an_unreachable_server_is_still_temporary() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    store = PostgresStore(f"postgresql://retryq:{SECRET}@127.0.0.1:{port}/postgres", sleep=sleeps.append)
    with pytest.raises(StoreUnavailable) as raised:
        store.load()
    assert len(sleeps) == 4  # tried 5 times
    assert SECRET not in str(raised.value)


# -- a worker started while the server is down waits for it ------------------------------------------


class Proxy:
    """A TCP relay on a loopback port of its own to the server: closed (the server looks down) until opened."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def open(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        with suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.target)
                self._sockets += [client, server]
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for each in [*self._sockets, *([self._listener] if self._listener else [])]:
            with suppress(OSError):
                each.close()


def test_a_worker_started_while_the_server_is_down_waits_for_it(
    postgres_url: str, postgres_schema: str, workflow: FakeWorkflow
) -> None:
    server = urlsplit(postgres_url)
    proxy = Proxy((server.hostname or "127.0.0.1", server.port or 5432))
    url = address(postgres_url).replace(f":{server.port}/", f":{proxy.port}/")
    config = make_config(workflow.argv(), queue=url, namespace=postgres_schema)
    store = PostgresStore(url, schema=postgres_schema, sleep=lambda _: None)  # its own retries: no waiting
    direct = RetryQueue(PostgresStore(postgres_url, schema=postgres_schema), config=config)
    direct.schedule("balthazar", "2025-12-19", 0)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            proxy.open()  # the server is back
        if len(waits) > 200 or (workflow.calls() and direct.jobs()[0].status.value == "completed"):
            processor.request_stop(signal.SIGTERM)

    processor = Processor(store, config, sleep=sleep)
    try:
        report = processor.run(worker=True, handle_signals=False)
    finally:
        proxy.close()
        store.close()
        direct.close()
    assert waits[:2] == [2.0, 4.0]  # the outage's waits, before the server came back
    assert (report.succeeded, len(workflow.calls())) == (1, 1)


# -- the setup the documentation gives, run as written -----------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def documented_sql() -> list[list[str]]:
    """The ```sql blocks of docs/backends.md, each as its statements."""
    blocks = re.findall(r"```sql[^\n]*\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return [[statement.strip() for statement in block.split(";") if statement.strip()] for block in blocks]


@pytest.mark.parametrize("way", ["own database", "own schema"])
def test_the_documented_setup_is_all_retryq_needs(
    admin: psycopg.Connection[tuple[object, ...]], postgres_url: str, workflow: FakeWorkflow, way: str
) -> None:
    own, shared, schema_in_shared = documented_sql()
    suffix = uuid.uuid4().hex[:10]
    names = {"retryq": f"retryq_doc_{suffix}", "jobs": f"retryq_jobs_{suffix}", "app": f"retryq_app_{suffix}"}
    password = f"pw-{suffix}"

    def named(statement: str) -> str:
        statement = statement.replace("'choose-a-password'", f"'{password}'")
        return re.sub(r"\b(retryq|jobs|app)\b", lambda found: names[found.group(1)], statement)

    database = names["jobs"] if way == "own database" else names["app"]
    try:
        if way == "own schema":
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        for statement in own if way == "own database" else shared:
            admin.execute(named(statement))
        if way == "own schema":
            with psycopg.connect(address(postgres_url, database=database), autocommit=True) as inside:
                for statement in schema_in_shared:
                    inside.execute(named(statement))
        url = address(postgres_url, user=names["retryq"], password=password, database=database)
        with RetryQueue(config=make_config(workflow.argv(), queue=url, namespace=names["retryq"])) as queue:
            queue.schedule("balthazar", "2025-12-19", 0)
            assert process(queue).succeeded == 1
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        with suppress(psycopg.errors.UndefinedObject):
            admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(names["retryq"])))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(names["retryq"])))

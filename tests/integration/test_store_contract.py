"""The contract every store passes (:mod:`retryq.testing`), run against each built-in backend."""

from __future__ import annotations

import itertools
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from retryq import JsonFileStore, MemoryStore, Store
from retryq.stores import JobFilter
from retryq.testing import ServerStoreContract, StoreContract

SECRET = "s3cr3t-Pa55"


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def new_store(self) -> Callable[..., Store]:
        return lambda archive=True: MemoryStore(archive=archive)


class TestJsonFileStore(StoreContract):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> Callable[..., Store]:
        numbers = itertools.count()
        return lambda archive=True: JsonFileStore(tmp_path / f"queue{next(numbers)}.json", archive=archive)


def unused_port() -> int:
    """A loopback port nothing listens on (bound a moment, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_options(url: str, **options: str) -> str:
    separator = "&" if "?" in url else "?"
    return url + separator + "&".join(f"{name}={value}" for name, value in options.items())


@pytest.mark.postgres
class TestPostgresStore(ServerStoreContract):
    """Each store in a schema of its own; its connections named by the test (``application_name``), so that
    cutting them leaves every other connection alone; a password in the URL, which no message shows
    (the test cluster trusts loopback: any password is accepted)."""

    @pytest.fixture
    def name(self) -> str:
        return f"retryq_contract_{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def new_store(self, postgres_url: str, name: str) -> Iterator[Callable[..., Store]]:
        from retryq.stores.postgres import PostgresStore

        user, host = postgres_url.split("://", 1)[1].split("@", 1)
        url = with_options(f"postgresql://{user}:{SECRET}@{host}", application_name=name)
        schemas: list[str] = []

        def new(archive: bool = True, **options: Any) -> Store:
            schemas.append(f"{name}_{len(schemas)}")
            return PostgresStore(url, schema=schemas[-1], archive=archive, **options)

        yield new
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as connection:
            for schema in schemas:
                connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    @pytest.fixture
    def cut_connections(self, postgres_url: str, name: str) -> Callable[[Store], None]:
        import psycopg

        def cut(_: Store) -> None:
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
                )

        return cut

    @pytest.fixture
    def unreachable(self) -> Iterator[tuple[Store, str]]:
        from retryq.stores.postgres import PostgresStore

        store = PostgresStore(f"postgresql://retryq:{SECRET}@127.0.0.1:{unused_port()}/postgres", sleep=lambda _: None)
        yield store, SECRET
        store.close()


@pytest.mark.redis
class TestRedisStore(ServerStoreContract):
    """Each store under a key prefix of its own; its connections named by the test (``client_name``), so that
    cutting them leaves every other client alone; a password in the URL, which no message shows (the test
    server asks for none, and Redis 6 takes one it does not need as the default user's)."""

    @pytest.fixture
    def name(self) -> str:
        return f"retryq-contract-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def new_store(self, redis_url: str, name: str) -> Iterator[Callable[..., Store]]:
        from retryq.stores.redis import RedisStore

        url = with_options(redis_url, client_name=name)
        namespaces: list[str] = []

        def new(archive: bool = True, **options: Any) -> Store:
            namespaces.append(f"{name}-{len(namespaces)}")
            return RedisStore(url, namespace=namespaces[-1], archive=archive, **options)

        yield new
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            for namespace in namespaces:
                keys = list(client.scan_iter(match=f"{{{namespace}}}:*", count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()

    @pytest.fixture
    def cut_connections(self, redis_url: str, name: str) -> Callable[[Store], None]:
        import redis

        def cut(_: Store) -> None:
            client = redis.Redis.from_url(redis_url)
            try:
                for each in client.client_list():
                    if each.get("name") == name:
                        client.client_kill_filter(_id=each["id"])
            finally:
                client.close()

        return cut

    @pytest.fixture
    def unreachable(self) -> Iterator[tuple[Store, str]]:
        from retryq.stores.redis import RedisStore

        store = RedisStore(f"redis://:{SECRET}@127.0.0.1:{unused_port()}/0", sleep=lambda _: None)
        yield store, SECRET
        store.close()


def test_a_filter_with_nothing_set_selects_all() -> None:
    assert JobFilter.of().selects_all
    assert JobFilter.of(status=None, client=None).selects_all
    assert not JobFilter.of(status="pending").selects_all
    assert not JobFilter(statuses=frozenset()).selects_all  # no status at all: selects nothing

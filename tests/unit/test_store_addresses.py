"""Queue addresses: what is a URL, which backend a scheme names, and a password that no message shows."""

from __future__ import annotations

import pytest

from retryq.record.errors import ConfigError, ExitCode
from retryq.stores import backend_for, display_address, known_schemes, open_store
from retryq.stores.address import looks_like_url, url_secrets, without_secrets

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "address",
    [
        "postgresql://u@h/db",
        "POSTGRESQL://u@h/db",
        "postgres:/u@h/db",  # one slash: still a URL, never a file name
        "postgresql+psycopg://u@h/db",
        "redis://h:6379/0",
        "file:///var/lib/retryq/queue.json",
        "Foo.Bar-1+x://anything",
    ],
)
def test_anything_that_looks_like_a_url_is_one(address: str) -> None:
    assert looks_like_url(address)


@pytest.mark.parametrize(
    "address",
    [".retry-queue.json", "queue.json", "/var/lib/retryq/queue.json", "./postgresql", "C:\\queue.json", "C:/q.json"],
)
def test_paths_are_not_urls(address: str) -> None:
    assert not looks_like_url(address)


@pytest.mark.parametrize(
    "address",
    ["postgresql://u@h/db", "postgres://u@h/db", "POSTGRESQL://u@h/db", "PostgreS://u@h/db"],
)
def test_schemes_are_case_insensitive(address: str) -> None:
    assert backend_for(address).name == "postgres"


def test_a_path_and_a_file_url_name_the_file_store() -> None:
    assert backend_for("queue.json").name == "file"
    assert backend_for("FILE:///tmp/queue.json").name == "file"


@pytest.mark.parametrize(
    "address",
    [
        f"postgresql+psycopg://user:{SECRET}@db/jobs",
        f"pg://user:{SECRET}@db/jobs",
        f"HTTPS://user:{SECRET}@db/jobs",
        f"mysql:/user:{SECRET}@db/jobs",
    ],
)
def test_an_unknown_scheme_is_a_configuration_error_naming_the_known_ones(address: str) -> None:
    with pytest.raises(ConfigError) as raised:
        backend_for(address)
    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.CONFIG
    assert SECRET not in message
    assert "unknown queue address scheme" in message
    assert "known: file, postgres, postgresql" in message
    assert "\n" not in message


def test_a_near_miss_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"did you mean postgresql://\?"):
        backend_for(f"postgresql+psycopg://user:{SECRET}@db/jobs")


def test_the_built_in_schemes_are_known() -> None:
    assert {"file", "postgres", "postgresql"} <= set(known_schemes())


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (f"postgresql://user:{SECRET}@db:5432/jobs", "postgresql://user@db:5432/jobs"),
        (f"POSTGRESQL://user:{SECRET}@db/jobs", "POSTGRESQL://user@db/jobs"),
        (f"postgres:/user:{SECRET}@db/jobs", "postgres:/user@db/jobs"),
        (f"postgresql+psycopg://user:{SECRET}@db/jobs", "postgresql+psycopg://user@db/jobs"),
        (f"postgresql://user:{SECRET}@[::1/jobs", "postgresql://user@[::1/jobs"),
        (f"postgresql://user@db/jobs?sslmode=require&password={SECRET}", "postgresql://user@db/jobs?sslmode=require"),
        (f"postgresql://user@db/jobs?PASSWORD={SECRET}", "postgresql://user@db/jobs"),
        (f"unix:///run/redis.sock?db=1&password={SECRET}", "unix:///run/redis.sock?db=1"),
        (f"redis://:{SECRET}@cache:6379/0", "redis://cache:6379/0"),
        ("queue.json", "queue.json"),
    ],
)
def test_an_address_is_shown_without_its_password(address: str, shown: str) -> None:
    assert display_address(address) == shown


def test_a_password_is_masked_in_any_text_in_its_plain_and_encoded_forms() -> None:
    address = "postgresql://user:p%40ss%2Fw0rd@db/jobs?password=other-Secret"
    assert sorted(url_secrets(address)) == ["other-Secret", "p%40ss%2Fw0rd", "p@ss/w0rd"]
    text = 'FATAL: password "p@ss/w0rd" or p%40ss%2Fw0rd or other-Secret rejected'
    assert without_secrets(text, address) == 'FATAL: password "***" or *** or *** rejected'
    assert without_secrets("nothing to hide", "queue.json") == "nothing to hide"


@pytest.mark.parametrize(
    ("address", "says"),
    [
        (f"postgresql://user:{SECRET}@[::1/jobs", "not a valid PostgreSQL address"),
        (f"postgresql://user:{SECRET}@db:abc/jobs", "port 'abc' is not a number"),
        (f"POSTGRESQL://user:{SECRET}@db:5432,db2:x/jobs", "port 'x' is not a number"),
        (f"postgres:/user:{SECRET}@db/jobs", "not a valid PostgreSQL address"),
        (f"postgresql://user:{SECRET}@db/jobs?bogus=1", "not a valid PostgreSQL address"),
    ],
)
def test_a_malformed_database_address_is_refused_before_any_connection(address: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_store(address)
    assert says in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("schema", ["pg_catalog", "information_schema", "pg_toast", "Bad-Name", "x" * 64])
def test_a_schema_postgresql_keeps_for_itself_or_cannot_name_is_refused(schema: str) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        open_store("postgresql://user@db/jobs", namespace=schema)
    with pytest.raises(ConfigError, match="namespace"):
        open_store(f"postgresql://user@db/jobs?options=-csearch_path%3D{schema}")


def test_schema_is_an_alias_of_namespace() -> None:
    store = open_store("postgresql://user@db/jobs", schema="queue_a")
    assert store.location == "postgresql://user@db/jobs"
    assert getattr(store, "schema", None) == "queue_a"  # nothing connects until the first operation
    with pytest.raises(ValueError, match="namespace or schema"):
        open_store("postgresql://user@db/jobs", schema="a", namespace="b")

"""Redis addresses: what each form means to the driver, what a malformed one says, and no password shown."""

from __future__ import annotations

import pytest

from retryq.record.errors import ConfigError
from retryq.stores import display_address, open_store
from retryq.stores.address import looks_like_url
from retryq.stores.redis.address import is_redis_url, parse


@pytest.mark.parametrize(
    ("url", "options", "db"),
    [
        ("redis://localhost", {"host": "localhost", "port": 6379}, 0),
        ("redis://cache.internal:6380/3", {"host": "cache.internal", "port": 6380}, 3),
        ("REDIS://Cache:6379/2", {"host": "cache", "port": 6379}, 2),
        ("rediss://cache:6390/1", {"host": "cache", "port": 6390, "ssl": True}, 1),
        ("redis://jobs@cache/0", {"host": "cache", "port": 6379, "username": "jobs"}, 0),
        ("unix:///run/redis/redis.sock?db=5", {"unix_socket_path": "/run/redis/redis.sock"}, 5),
        ("unix:///run/redis/redis.sock", {"unix_socket_path": "/run/redis/redis.sock"}, 0),
        ("redis://cache/0?socket_timeout=2.5", {"host": "cache", "port": 6379, "socket_timeout": 2.5}, 0),
    ],
)
def test_each_form_of_address(url: str, options: dict[str, object], db: int) -> None:
    address = parse(url, environ={})
    assert address.options == options
    assert address.db == db
    assert address.password is None
    assert is_redis_url(url)


def test_the_password_comes_from_the_url_else_from_rediscli_auth() -> None:
    assert parse("redis://:s3cr%40t@cache/0", environ={"REDISCLI_AUTH": "other"}).password == "s3cr@t"
    assert parse("redis://cache/0", environ={"REDISCLI_AUTH": "from-env"}).password == "from-env"
    assert parse("unix:///tmp/r.sock?db=1&password=pw", environ={}).password == "pw"


def test_a_namespace_may_ride_on_the_address() -> None:
    assert parse("redis://cache/0?namespace=billing", environ={}).namespace == "billing"
    with pytest.raises(ConfigError, match="invalid namespace 'a b'"):
        parse("redis://cache/0?namespace=a%20b", environ={})


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://:hunter2@cache:notaport/0", "not a valid Redis address"),
        ("redis://:hunter2@cache/zero", "the database must be a number"),
        ("redis://:hunter2@cache/0?db=1", "the database is given twice"),
        ("redis://:hunter2@[::1/0", "not a valid Redis address"),
        ("redis://:hunter2@/0", "no host"),
        ("unix://?db=1&password=hunter2", "a unix:// address names a socket"),
        ("redis://:hunter2@cache/0?sslmode=require", "unknown parameter 'sslmode'"),
    ],
)
def test_a_malformed_address_is_a_configuration_error_without_its_password(url: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said) as raised:
        open_store(url)
    assert raised.value.exit_code == 78
    assert "hunter2" not in str(raised.value)


def test_messages_show_the_address_without_its_password() -> None:
    assert display_address("redis://:hunter2@cache:6379/0") == "redis://cache:6379/0"
    assert display_address("redis://jobs:hunter2@cache/0") == "redis://jobs@cache/0"
    assert display_address("unix:///tmp/r.sock?db=1&password=hunter2") == "unix:///tmp/r.sock?db=1"
    assert parse("redis://:hunter2@cache/0", environ={}).masked("AUTH hunter2 failed") == "AUTH *** failed"


def test_a_redis_address_is_never_a_file_name() -> None:
    for url in ("redis://cache/0", "rediss://cache/0", "unix:///tmp/r.sock"):
        assert looks_like_url(url)  # a workflow gets it as it is, not made into an absolute path
    assert not is_redis_url("redis.json")
    assert not is_redis_url("queues/redis:/x")

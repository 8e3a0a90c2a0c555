"""Fixtures: a clean working directory and environment, a fake workflow, a queue, a CLI runner."""

from __future__ import annotations

import importlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore, RetryQueue

from .helpers import FakeWorkflow, fake_workflow, make_config, unavailable

TIERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by the tier its directory holds (``-m unit`` and so on)."""
    for item in items:
        tier = next((part for part in item.path.parts if part in TIERS), None)
        if tier is not None:
            item.add_marker(tier)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's RETRYQ_* variables or config; each runs in its own directory."""
    for name in list(os.environ):
        if name.startswith(("RETRYQ_", "RETRY_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def workflow(tmp_path: Path) -> FakeWorkflow:
    return fake_workflow(tmp_path)


@pytest.fixture
def queue(tmp_path: Path, workflow: FakeWorkflow) -> RetryQueue:
    """A queue on ``.retry-queue.json`` whose default workflow is the fake one."""
    return RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv()))


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def retryq_bin() -> str:
    """The installed ``retryq`` script, for tests that need a real process."""
    candidate = Path(sys.executable).with_name("retryq")
    assert candidate.exists(), "retryq is not installed in this environment (pip install -e .)"
    return str(candidate)


@dataclass(frozen=True)
class Installed:
    """retryq as users get it: a wheel and an sdist, the wheel installed (no ``-e``) in a fresh venv."""

    venv: Path
    wheel: Path
    sdist: Path

    @property
    def retryq(self) -> str:
        return str(self.venv / "bin" / "retryq")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    """Build the sdist, the wheel from it (as ``python -m build`` does), and install the wheel in a new venv.

    It lives in a directory every user can traverse, so that a test can run it as another user (cron's).
    """
    root = Path(tempfile.mkdtemp(prefix="retryq-installed-"))
    root.chmod(0o755)
    try:
        # From a clean copy, as a fresh clone has it: a stale egg-info or build/ in the working tree would
        # otherwise fill in files that the packaging configuration leaves out.
        source = root / "source"
        shutil.copytree(
            Path(__file__).resolve().parents[1],
            source,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "demo", ".hypothesis"
            ),
        )
        dist = root / "dist"
        _run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], timeout=600)
        [wheel] = dist.glob("retryq-*.whl")
        [sdist] = dist.glob("retryq-*.tar.gz")
        venv = root / "venv"
        _run([_shared_interpreter(), "-m", "venv", str(venv)], timeout=300)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], timeout=600)
        yield Installed(venv, wheel, sdist)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _shared_interpreter() -> str:
    """A base Python (not this venv's: the new venv must not see the editable install) that every user
    can run: this one if its whole path is open to others, else the system's (a pyenv under /root is not)."""
    candidates = [getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]
    for candidate in candidates:
        if Path(candidate).exists() and _open_to_all(Path(candidate).resolve()):
            return candidate
    return candidates[0]


def _open_to_all(path: Path) -> bool:
    """Whether any user may execute ``path``: it and every directory above it have the "others" x bit."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in (path, *path.parents))


def _run(argv: list[str], *, timeout: float) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


@dataclass(frozen=True)
class Server:
    """A server for the tests (PostgreSQL, Redis), and its directory when the tests may restart it."""

    url: str
    directory: Path | None


PostgresServer = RedisServer = Server


def _session_server(variable: str, module: str, prefix: str, needs: str, driver: str | None = None) -> Iterator[Server]:
    """``$variable`` (what .ci/run starts, its files in ``$variable_DIR``), else a throwaway server
    that ``tests/<module>.py`` starts in a temp directory (a loopback port) and stops after the session."""
    given = os.environ.get(variable)
    if given:
        directory = os.environ.get(f"{variable}_DIR")
        yield Server(given, Path(directory) if directory else None)
        return
    if driver is not None:
        try:
            importlib.import_module(driver)
        except ModuleNotFoundError:
            unavailable(f"the {needs} tests need the driver: pip install 'retryq[{driver}]'")
    server = importlib.import_module(f".{module}", __package__)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        url = server.start(root)
    except RuntimeError as error:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"the {needs} tests need a server: {error}")
    try:
        yield Server(url, root)
    finally:
        server.stop(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """``$RETRYQ_TEST_POSTGRES``, else a throwaway cluster started here."""
    yield from _session_server("RETRYQ_TEST_POSTGRES", "postgres_cluster", "retryq-pg-", "PostgreSQL")


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A schema of its own for one test, dropped after it."""
    import uuid

    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def postgres_queue(postgres_url: str, postgres_schema: str) -> str:
    """A queue address of its own: the server's URL, its tables in this test's schema."""
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options=-csearch_path%3D{postgres_schema}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """``$RETRYQ_TEST_REDIS``, else a throwaway redis-server started here (appendfsync always)."""
    yield from _session_server("RETRYQ_TEST_REDIS", "redis_server", "retryq-redis-", "Redis", driver="redis")


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A key prefix of its own for one test; its keys are deleted after it."""
    import uuid

    import redis

    namespace = f"test-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{{{namespace}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # a test that stopped the server leaves nothing to clean
    finally:
        client.close()


@pytest.fixture
def redis_queue(redis_url: str, redis_namespace: str) -> str:
    """A queue address of its own: the server's URL, its keys under this test's namespace."""
    separator = "&" if "?" in redis_url else "?"
    return f"{redis_url}{separator}namespace={redis_namespace}"


@pytest.fixture
def own_redis() -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server of this test's own (``own_redis(password=…, settings=[…])``), for tests
    that kill it, restart it or configure it; every one is stopped and removed after the test."""
    try:
        import redis  # noqa: F401
    except ModuleNotFoundError:
        unavailable("the Redis tests need the driver: pip install 'retryq[redis]'")
    from . import redis_server as server

    started: list[Path] = []

    def start(*, password: str | None = None, settings: Sequence[str] = ()) -> RedisServer:
        root = Path(tempfile.mkdtemp(prefix="rq-redis-"))  # short: a unix socket path has a limit
        started.append(root)
        try:
            return RedisServer(server.start(root, password=password, settings=settings), root)
        except RuntimeError as error:
            unavailable(f"the Redis tests need a server: {error}")

    yield start
    for root in started:
        server.stop(root)
        shutil.rmtree(root, ignore_errors=True)

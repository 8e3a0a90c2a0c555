"""Running workflow commands (what to run is :mod:`retryq.commands`'s): one process group each,
output streamed and its tail kept, timeouts enforced by stopping then killing the whole group."""

from __future__ import annotations

__all__ = ["OutputLines", "RunResult", "Runnable", "Supervisor", "run_workflow", "runnable_commands"]

import logging
import os
import queue
import subprocess
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..record.errors import ConfigError, ExitCode, InvalidInput
from ..record.text import plural
from ..record.timeutil import format_duration, utcnow
from . import pids, platform
from .commands import invocation, resolve_command

if TYPE_CHECKING:
    from ..record.models import Job, JobKey
    from ..settings.config import Config

log = logging.getLogger("retryq")

#: How much of a workflow's output is kept with an attempt (the end of it, where errors are).
TAIL_LINES = 20
TAIL_CHARS = 2000
#: Output is read this much at a time, and a longer line keeps only its last LINE_BYTES (logged with
#: what was cut): a workflow that prints 300 MB on one line costs retryq a few hundred KiB, not the line.
READ_BYTES = 64 * 1024
LINE_BYTES = 64 * 1024

LineSink = Callable[[str, str], None]


@dataclass(frozen=True)
class RunResult:
    """How one run of a workflow ended."""

    started_at: datetime
    finished_at: datetime
    exit_code: int | None  # 128 + N when killed by signal N; None if it never started
    timed_out: bool = False
    stopped: bool = False  # terminated because retryq itself was asked to stop
    stop_signal: int | None = None  # the signal that asked retryq to stop, when there was one
    output_tail: str = ""
    pid: int | None = None
    leftovers: int = 0  # processes the run left running outside its group, stopped when it ended

    def describe_leftovers(self) -> str | None:
        """A line for the log when the run left processes behind, else None."""
        if not self.leftovers:
            return None
        plural = "es" if self.leftovers > 1 else ""
        return f"stopped {self.leftovers} process{plural} the run left behind (outside its process group)"


@dataclass
class _Run:
    key: str
    label: str
    process: subprocess.Popen[bytes]
    started_at: datetime
    deadline: float
    kill_grace: float
    run_id: str  # what its processes carry in RETRYQ_RUN_ID
    forks: int | None = None  # the kernel's count of tasks created, just before it started (see pids.Started)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None
    kill_at: float | None = None
    timed_out: bool = False
    stopped: bool = False


class Supervisor:
    """Runs several workflows at once and reports each as it ends (a test may subclass it to run none).

    Output lines go to ``on_line(label, line)`` as they come (from reader threads); a signal
    handler may call :meth:`stop_all` and :meth:`wake`. Everything else runs in the caller's thread.
    """

    def __init__(
        self,
        *,
        on_line: LineSink | None = None,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_line = on_line
        self._now = now
        self._monotonic = monotonic
        self._runs: dict[str, _Run] = {}
        self._events: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop_requested = False

    def start(
        self,
        key: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        timeout: float,
        kill_grace: float,
        label: str = "",
        capture: bool = True,
    ) -> int:
        """Start a workflow; return its pid (which is also its process group id). Raises OSError.

        The run is told to this process's watchdog, which stops its processes if this process dies
        (POSIX; see :mod:`retryq.running.watchdog`).
        """
        run_id = env.get(platform.RUN_ID_VARIABLE) or key
        watchdog = platform.watchdog()
        watchdog.watch(run_id, kill_grace)
        forks = pids.forks_so_far()
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.STDOUT if capture else None,
                env=dict(env),
                close_fds=True,
                **platform.popen_group_options(),
            )
        except OSError:
            watchdog.forget(run_id)
            raise
        watchdog.started(run_id, process.pid)
        run = _Run(key, label, process, self._now(), self._monotonic() + timeout, kill_grace, run_id, forks)
        self._runs[key] = run
        if self._stop_requested:
            # A stop that came while this run was starting found nothing to stop: stop it now.
            run.stopped = True
            platform.terminate_group(process.pid)
            run.kill_at = self._monotonic() + kill_grace
        if capture:
            run.reader = threading.Thread(target=self._read, args=(run,), name=f"retryq-out-{key}", daemon=True)
            run.reader.start()
        threading.Thread(target=self._wait, args=(run,), name=f"retryq-wait-{key}", daemon=True).start()
        return process.pid

    def wait(self, timeout: float | None = None) -> list[tuple[str, RunResult]]:
        """Block until a run ends, ``timeout`` passes or :meth:`wake` is called; return the runs that ended."""
        limit = None if timeout is None else self._monotonic() + timeout
        while True:
            finished = self._collect()
            if finished:
                return finished
            wake_at = min([t for t in (limit, self._next_deadline()) if t is not None], default=None)
            wait_for = None if wake_at is None else max(0.0, wake_at - self._monotonic())
            try:
                event = self._events.get(timeout=wait_for)
            except queue.Empty:
                event = None
            self._enforce_deadlines()
            if event is None and limit is not None and self._monotonic() >= limit:
                return self._collect()
            if event == "wake":
                return self._collect()

    def wake(self) -> None:
        """Make a pending :meth:`wait` return (safe from a signal handler)."""
        self._events.put("wake")

    def stop_all(self, *, immediately: bool = False) -> None:
        """Terminate every run (SIGTERM, SIGKILL after its grace; at once with ``immediately``)."""
        self._stop_requested = True
        now = self._monotonic()
        for run in list(self._runs.values()):
            run.stopped = True
            if immediately:
                platform.kill_group(run.process.pid)
                run.kill_at = now
            elif run.kill_at is None:
                platform.terminate_group(run.process.pid)
                run.kill_at = now + run.kill_grace
        self.wake()

    # -- internals ---------------------------------------------------------------------------

    def _read(self, run: _Run) -> None:
        stdout = run.process.stdout
        assert stdout is not None
        lines = OutputLines()
        with stdout:
            while chunk := os.read(stdout.fileno(), READ_BYTES):
                for line in lines.feed(chunk):
                    self._keep(run, line)
        if (last := lines.end()) is not None:
            self._keep(run, last)

    def _keep(self, run: _Run, line: str) -> None:
        run.tail.append(line)
        if self._on_line is not None:
            self._on_line(run.label, line)

    def _wait(self, run: _Run) -> None:
        run.process.wait()
        self._events.put(run.key)

    def _next_deadline(self) -> float | None:
        times = [run.kill_at if run.kill_at is not None else run.deadline for run in self._runs.values()]
        return min(times, default=None)

    def _enforce_deadlines(self) -> None:
        now = self._monotonic()
        for run in self._runs.values():
            if run.process.poll() is not None:
                continue
            if run.kill_at is None and now >= run.deadline:
                run.timed_out = True
                platform.terminate_group(run.process.pid)
                run.kill_at = now + run.kill_grace
            elif run.kill_at is not None and now >= run.kill_at:
                platform.kill_group(run.process.pid)
                run.kill_at = now + 3600  # sent; do not resend in a busy loop

    def _collect(self) -> list[tuple[str, RunResult]]:
        ended: list[tuple[_Run, int]] = []
        for key, run in list(self._runs.items()):
            code = run.process.poll()
            if code is None:
                continue
            del self._runs[key]
            # Whatever the workflow left behind in its group must not outlive it: it would hold
            # the output pipe open, and could run beside the next attempt of the same job.
            if platform.group_alive(run.process.pid):
                platform.stop_group(run.process.pid, min(run.kill_grace, 5.0))
            ended.append((run, code))
        # What left the group (`setsid`, a daemon) carries the run's id on Linux: it is found and
        # stopped too, at every end of a run, so that it never runs beside the job's next attempt
        # (one scan of the host's processes for all the runs that ended together).
        leftovers = platform.stop_leftovers(
            {run.key: min(run.kill_grace, 5.0) for run, _ in ended}, since=_first_started([run for run, _ in ended])
        )
        finished = []
        for run, code in ended:
            platform.watchdog().forget(run.run_id)  # nothing of it is left to stop
            if run.reader is not None:
                run.reader.join(timeout=5)
            finished.append((run.key, self._result(run, code, leftovers[run.key])))
        return finished

    def _result(self, run: _Run, code: int, leftovers: int) -> RunResult:
        exit_code = ExitCode.of_signal(-code) if code < 0 else code
        tail = "\n".join(run.tail)
        if len(tail) > TAIL_CHARS:
            tail = "…" + tail[-TAIL_CHARS:]
        return RunResult(
            started_at=run.started_at,
            finished_at=self._now(),
            exit_code=exit_code,
            timed_out=run.timed_out,
            stopped=run.stopped and not run.timed_out,
            output_tail=tail,
            pid=run.process.pid,
            leftovers=leftovers,
        )


def _first_started(runs: list[_Run]) -> pids.Started | None:
    """When the first of ``runs`` started: every process of the others was created after it. None when
    one's start is unknown (every process is then read)."""
    starts = [pids.Started(run.process.pid, run.forks) for run in runs if run.forks is not None]
    return min(starts, key=lambda start: start.forks) if starts and len(starts) == len(runs) else None


class OutputLines:
    """Splits output into lines as it comes, keeping at most :data:`LINE_BYTES` of each (its end)."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._cut = 0  # bytes left out of the start of the current line

    def feed(self, data: bytes) -> list[str]:
        """The lines that ``data`` completes."""
        lines = []
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._add(data[start:end])
            lines.append(self._take())
            start = end + 1
        self._add(data[start:])
        return lines

    def end(self) -> str | None:
        """The last line, when the output did not end with a newline."""
        return self._take() if self._partial or self._cut else None

    def _add(self, piece: bytes) -> None:
        self._partial += piece
        if len(self._partial) > 2 * LINE_BYTES:  # trimmed now and then, not on every read
            self._trim()

    def _trim(self) -> None:
        excess = len(self._partial) - LINE_BYTES
        if excess > 0:
            del self._partial[:excess]
            self._cut += excess

    def _take(self) -> str:
        self._trim()
        raw, cut = bytes(self._partial), self._cut
        if cut:  # not from the middle of a character: skip its continuation bytes
            kept = raw.lstrip(bytes(range(0x80, 0xC0)))
            raw, cut = kept, cut + len(raw) - len(kept)
        self._partial.clear()
        self._cut = 0
        # A NUL goes the way of bytes that are not UTF-8: a job's text never holds one (nor could PostgreSQL).
        line = raw.decode("utf-8", "replace").rstrip("\r\n").replace("\x00", "\ufffd")
        return f"[{cut} bytes cut] {line}" if cut else line


@dataclass
class Runnable:
    """What a run may start, and what it may not (each reason once, to be logged and reported)."""

    commands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    config_errors: list[str] = field(default_factory=list)
    #: Pending jobs of workflows not configured here, by workflow (left pending for a process that knows them).
    unknown_workflows: Counter[str] = field(default_factory=Counter)


def runnable_commands(config: Config, only: Collection[str] | None, pending: Iterable[Job]) -> Runnable:
    """The commands of the workflows a run may start (``only`` those, if given), found on their PATH.

    What cannot run is logged and returned: a command not found, pending jobs of a workflow not
    configured, pending jobs of a workflow configured without a command (a configuration error).
    """
    configured = {name: settings for name, settings in config.workflows.items() if settings.command}
    if not configured:
        raise ConfigError("no workflow command configured: set [workflow] command in retryq.toml, or RETRYQ_COMMAND")
    runnable = Runnable()
    for name, settings in configured.items():
        if only is not None and name not in only:
            continue
        assert settings.command is not None
        try:
            resolve_command(settings.command[0], settings.command_origin, settings.path)
        except ConfigError as error:
            runnable.config_errors.append(str(error))
            log.error("%s; its jobs stay pending", error)
            continue
        runnable.commands[name] = settings.command
    commandless: Counter[str] = Counter()
    for job in pending:
        if job.workflow not in config.workflows:
            runnable.unknown_workflows[job.workflow] += 1
        elif job.workflow not in configured and (only is None or job.workflow in only):
            commandless[job.workflow] += 1
    for name, count in sorted(runnable.unknown_workflows.items()):
        log.warning("%s of workflow %r, which is not configured; left pending", plural(count, "pending job"), name)
    for name, count in sorted(commandless.items()):
        # Configured but with nothing to run: a configuration error, not a retired workflow.
        message = f"{plural(count, 'pending job')} of workflow {name!r}, which has no command configured; left pending"
        runnable.config_errors.append(message)
        log.error("%s", message)
    return runnable


def run_workflow(
    config: Config,
    key: JobKey,
    *,
    queue: Mapping[str, str] | None,
    timeout: timedelta | None = None,
    capture_output: bool = False,
    on_line: LineSink | None = None,
    handle_signals: bool = True,
) -> RunResult:
    """Run the workflow of ``key`` now, outside the queue (``retryq run``), and wait for it.

    The output goes straight to this process's stdout and stderr unless ``capture_output``.
    SIGINT or SIGTERM stop the workflow's process group (the result says ``stopped``).
    """
    settings = config.workflow(key.workflow)
    if not settings.command:
        raise ConfigError(f"workflow {settings.name!r} has no command configured")
    resolve_command(settings.command[0], settings.command_origin, settings.path)
    if timeout is not None and timeout <= timedelta(0):
        raise InvalidInput(f"timeout must be more than 0 seconds, not {format_duration(timeout)}")
    run_id = uuid.uuid4().hex
    argv, env = invocation(
        settings.command,
        key,
        max_attempts=settings.max_attempts,
        run_id=run_id,
        queue=queue,
        config_file=str(config.source) if config.source else None,
        env=settings.env,
    )
    supervisor = Supervisor(on_line=on_line)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        supervisor.stop_all(immediately=len(received) > 1)

    with platform.stop_signals(on_signal) if handle_signals else nullcontext():
        try:
            supervisor.start(
                run_id,
                argv,
                env,
                timeout=(settings.timeout if timeout is None else timeout).total_seconds(),
                kill_grace=settings.kill_grace.total_seconds(),
                capture=capture_output,
            )
        except OSError as error:
            raise ConfigError(f"workflow command {argv[0]!r} could not start: {error.strerror or error}") from None
        while True:
            for _, result in supervisor.wait():
                return replace(result, stop_signal=received[0]) if received else result

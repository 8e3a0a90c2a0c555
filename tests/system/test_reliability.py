"""The holes a fault-injection campaign found, each reproduced with real processes, files and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from retryq import Config, JsonFileStore, RetryQueue
from retryq.record.errors import LockTimeout
from retryq.record.models import JobStatus, Outcome, Owner
from retryq.record.timeutil import format_utc, utcnow
from retryq.running.platform import pid_alive

from ..conftest import Installed
from ..helpers import invoke, make_config, make_job, process, temporary_user, write_script

QUEUE = Path(".retry-queue.json")


def require_root(reason: str) -> None:
    """Skip without root; in CI (CI=true, run as root) such a test must run."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI runs as root and must run this test")
    pytest.skip(reason)


def unchanged(job):  # type: ignore[no-untyped-def]
    return job


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# -- 1. a queue file reached through a symbolic link, or with hard links -------------------------


def test_a_symlinked_queue_is_written_through_and_locked_beside_its_target(tmp_path: Path, cli: CliRunner) -> None:
    data = tmp_path / "data"
    data.mkdir()
    real = data / "queue.json"
    QUEUE.symlink_to(real)
    env = {"RETRYQ_COMMAND": "true"}
    assert invoke(cli, "schedule", "a", "2025-12-19", env=env).exit_code == 0
    assert invoke(cli, "schedule", "b", "2025-12-19", "--queue-file", str(real), env=env).exit_code == 0
    assert QUEUE.is_symlink(), "a write replaced the link with a regular file"
    assert [job["clientId"] for job in json.loads(real.read_text())] == ["a", "b"]
    # Writers through either name take the same lock: the one beside the real file.
    through_link = JsonFileStore(QUEUE, lock_timeout=0.2)
    with FileLock(f"{real}.lock"), pytest.raises(LockTimeout):
        through_link.add(make_job(id="c", client_id="c"), unchanged)

    def done(job):  # type: ignore[no-untyped-def]
        return job.model_copy(update={"status": JobStatus.COMPLETED, "finished_at": utcnow() - timedelta(days=1)})

    through_link.update({job.id: done for job in through_link.load()})
    assert len(RetryQueue(QUEUE, config=Config()).prune(keep_days=0)) == 2
    assert (data / "queue.json.archive.jsonl").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == [".retry-queue.json", "data"]


def test_a_hard_linked_queue_is_refused(tmp_path: Path, cli: CliRunner) -> None:
    invoke(cli, "schedule", "a", "2025-12-19", env={"RETRYQ_COMMAND": "true"})
    os.link(QUEUE, tmp_path / "other-name.json")
    before = QUEUE.read_bytes()
    for args in (["schedule", "b", "2025-12-19"], ["list"], ["process"]):
        result = invoke(cli, *args, env={"RETRYQ_COMMAND": "true"})
        assert result.exit_code == 78, (args, result.output)
        assert "has 2 hard links" in result.stderr
    assert QUEUE.read_bytes() == before


# -- 2. an archive append cut short by a full disk ----------------------------------------------

PRUNE_UNDER_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from retryq import Config, RetryQueue
    from retryq.record.errors import RetryqError
    try:
        RetryQueue(sys.argv[1], config=Config()).prune(keep_days=0)
    except RetryqError as error:
        print(error)
        sys.exit(74)
    """
)


def finished_jobs(count: int, prefix: str) -> list:  # type: ignore[type-arg]
    ended = utcnow() - timedelta(days=30)
    return [
        make_job(id=f"{prefix}{n}", client_id=f"{prefix}{n}", status=JobStatus.COMPLETED, finished_at=ended)
        for n in range(count)
    ]


def test_an_archive_append_cut_short_is_undone_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "queue.json"
    store = JsonFileStore(path)
    for job in finished_jobs(3, "old"):
        store.add(job, unchanged)
    RetryQueue(store, config=Config()).prune(keep_days=0)
    archive = Path(f"{path}.archive.jsonl")
    size = archive.stat().st_size
    for job in finished_jobs(20, "new"):
        store.add(job, unchanged)
    before = path.read_bytes()
    # The append of 20 lines stops a line and a half in: EFBIG half-way through a line.
    line = len(archive.read_bytes().splitlines()[0])
    limit = size + int(line * 1.5)
    cut = subprocess.run(
        [sys.executable, "-c", PRUNE_UNDER_LIMIT, str(path), str(limit)], capture_output=True, text=True, check=False
    )
    assert cut.returncode == 74, cut.stdout + cut.stderr
    assert archive.stat().st_size == size, "the part of the append that was written stayed"
    assert path.read_bytes() == before
    removed = RetryQueue(store, config=Config()).prune(keep_days=0)  # the disk has room again
    assert len(removed) == 20
    archived = [json.loads(text)["id"] for text in archive.read_text().splitlines()]
    assert sorted(archived) == sorted([f"old{n}" for n in range(3)] + [f"new{n}" for n in range(20)])


def test_a_torn_last_line_is_skipped_and_never_glued_to_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "queue.json"
    store = JsonFileStore(path)
    store.add(finished_jobs(1, "a")[0], unchanged)
    RetryQueue(store, config=Config()).prune(keep_days=0)
    archive = Path(f"{path}.archive.jsonl")
    archive.write_bytes(archive.read_bytes() + b'{"clientId": "torn", "da')  # a crash mid-append, long ago
    for job in finished_jobs(2, "b"):
        store.add(job, unchanged)
    RetryQueue(store, config=Config()).prune(keep_days=0)
    assert sorted(job.id for job in store.load_archive()) == ["a0", "b0", "b1"]
    assert "line 2 is not a job; skipped" in caplog.text


def test_a_prune_on_a_full_disk_loses_nothing(tmp_path: Path) -> None:
    require_root("mounting a 64 KiB file system needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=False).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        path = mount / "queue.json"
        store = JsonFileStore(path)
        for job in finished_jobs(40, "j"):
            store.add(job, unchanged)
        archive = Path(f"{path}.archive.jsonl")
        filler = mount / "filler"
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        filler.write_bytes(b"x" * (free - 4096 - 1000))  # room for a few lines of the archive, not all of them
        before = path.read_bytes()
        with pytest.raises(OSError, match="cannot append to the archive"):
            RetryQueue(store, config=Config()).prune(keep_days=0)
        assert path.read_bytes() == before
        assert not archive.exists() or archive.stat().st_size == 0
        filler.unlink()
        assert len(RetryQueue(store, config=Config()).prune(keep_days=0)) == 40
        assert sorted(job.id for job in store.load_archive()) == sorted(f"j{n}" for n in range(40))
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# -- 3. the lock file deleted while it is held -----------------------------------------------------

SLOW_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    real_fsync, ready, go = os.fsync, Path(sys.argv[2]), Path(sys.argv[3])
    def slow_fsync(fd):
        if not ready.exists():  # the first write: hold it, under the lock, until told to go on
            ready.write_text("writing")
            deadline = time.monotonic() + 120
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        real_fsync(fd)
    os.fsync = slow_fsync
    from retryq import Config, RetryQueue
    RetryQueue(sys.argv[1], config=Config()).schedule("slow", "2025-12-19", 0)
    """
)


@pytest.mark.slow
def test_a_lock_file_deleted_during_a_write_loses_no_schedule(tmp_path: Path, retryq_bin: str) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(QUEUE.resolve()), str(ready), str(go)])
    wait_for(ready)
    Path(".retry-queue.json.lock").unlink()  # `rm` by a person, or a cleanup script, mid-write
    other = subprocess.run(
        [retryq_bin, "schedule", "fast", "2025-12-19", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert other.returncode == 0, other.stderr  # acknowledged…
    go.write_text("")
    assert writer.wait(timeout=60) == 0
    assert sorted(job.client_id for job in JsonFileStore(QUEUE).load()) == ["fast", "slow"]  # …and kept


# -- 4. and 9. an invalid job, or one whose id reads as an option, never stops the queue ---------


def test_invalid_jobs_are_reported_kept_as_they_are_and_the_rest_runs(tmp_path: Path, cli: CliRunner) -> None:
    due = format_utc(utcnow() - timedelta(minutes=5))
    later = format_utc(utcnow() + timedelta(hours=1))
    good = make_job(id="good", execute_at=utcnow() - timedelta(minutes=5)).to_json_dict()
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "baddate", "clientId": "x", "date": "2025-13-45", "executeAt": later}),
        json.dumps({**good, "id": "paused", "clientId": "y", "status": "paused"}),
        json.dumps({**good, "id": "--help", "clientId": "z", "executeAt": due}),
        json.dumps({**good, "id": "-rf", "clientId": "w", "executeAt": due}),
        json.dumps({**good, "id": "pidless", "clientId": "v", "status": "running", "workflowPid": -1}),
        "42",
    ]
    QUEUE.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    seen = tmp_path / "seen"
    workflow = write_script(tmp_path / "fetch.sh", f'echo "$@" >> {seen}\n')
    env = {"RETRYQ_COMMAND": f"{workflow} {{job_id}} {{client}}"}
    result = invoke(cli, "process", env=env)
    assert result.exit_code == 0, result.output
    assert seen.read_text() == "good balthazar\n"  # no id ever reached the workflow as an option
    kept = QUEUE.read_text().splitlines()[1:-1]
    assert [line.rstrip(",") for line in kept[1:]] == lines[1:]  # byte for byte
    assert result.stdout.splitlines()[-1].endswith("; invalid 6")
    warnings = result.stderr.splitlines()
    assert len(warnings) == 6
    assert warnings[0].startswith("retryq: warning: .retry-queue.json: job #2 (baddate) is invalid: date: ")
    assert "job #4 (--help) is invalid: id: " in result.stderr
    assert "job #7 (?) is invalid: not a JSON object" in result.stderr
    listed = invoke(cli, "list", "--json", env=env)
    assert (listed.exit_code, [job["id"] for job in json.loads(listed.stdout)]) == (0, ["good"])
    doctor = invoke(cli, "doctor", env=env)
    assert doctor.exit_code == 1
    assert doctor.stdout.count("problem: .retry-queue.json: job #") == 6
    metrics = tmp_path / "retryq.prom"
    invoke(cli, "process", "--metrics-file", str(metrics), env=env)
    assert "retryq_invalid_jobs 6\n" in metrics.read_text()


def test_a_file_that_is_not_a_list_of_objects_is_still_fatal(cli: CliRunner) -> None:
    QUEUE.write_text('{"jobs": []}')
    result = invoke(cli, "process", env={"RETRYQ_COMMAND": "true"})
    assert result.exit_code == 65


# -- 5. files root creates beside the queue are given back --------------------------------------


@pytest.mark.slow
def test_files_root_creates_belong_to_the_queues_owner(tmp_path: Path, retryq_bin: str, installed: Installed) -> None:
    require_root("changing owners needs root")
    with temporary_user("retryqowner-") as user:
        _files_root_creates_belong_to(user, retryq_bin, installed)


def _files_root_creates_belong_to(user: str, retryq_bin: str, installed: Installed) -> None:
    import pwd

    owner = pwd.getpwnam(user)
    app = Path(tempfile.mkdtemp(prefix="retryq-owner-"))
    app.chmod(0o755)
    try:
        queue = app / ".retry-queue.json"
        store = JsonFileStore(queue)
        for job in finished_jobs(2, "done"):
            store.add(job, unchanged)
        store.add(make_job(id="pending1", client_id="p"), unchanged)
        for path in (app, queue):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        env = {"PATH": os.environ["PATH"], "RETRYQ_COMMAND": "true"}
        for args in (["cancel", "pending1"], ["prune", "--keep-days", "0"]):
            assert (
                subprocess.run([retryq_bin, *args], cwd=app, env=env, capture_output=True, check=False).returncode == 0
            )
        metrics = app / "retryq.prom"
        subprocess.run(
            [retryq_bin, "process", "--metrics-file", str(metrics)], cwd=app, env=env, check=True, capture_output=True
        )
        owners = {path.name: (path.stat().st_uid, path.stat().st_gid) for path in app.iterdir()}
        assert {".retry-queue.json.archive.jsonl", "retryq.prom"} <= set(owners)
        assert set(owners.values()) == {(owner.pw_uid, owner.pw_gid)}, owners
        # The owner's own cron run then prunes (appends to the archive root created) without exit 74.
        store.add(finished_jobs(1, "later")[0], unchanged)
        os.chown(queue, owner.pw_uid, owner.pw_gid)
        as_owner = subprocess.run(
            ["runuser", "-u", user, "--", installed.retryq, "prune", "--keep-days", "0"],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert as_owner.returncode == 0, as_owner.stderr
    finally:
        subprocess.run(["rm", "-rf", str(app)], check=False)


# -- 6. retention ---------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["keep_days = -3", "keep_days = { failed = -1 }", "[workflow]\nkeep_days = -1"])
def test_a_negative_retention_is_refused(cli: CliRunner, setting: str) -> None:
    Path("retryq.toml").write_text(setting + "\n")
    result = invoke(cli, "process", env={"RETRYQ_COMMAND": "true"})
    assert result.exit_code == 78
    assert "keep_days" in result.stderr
    assert "must be a whole number of days from 0 to 36500" in result.stderr


# -- 7. leases dated in the future ----------------------------------------------------------------


def running_elsewhere(ident: str, *, started: timedelta, lease: timedelta) -> object:
    now = utcnow()
    return make_job(
        id=ident,
        client_id=ident,
        status=JobStatus.RUNNING,
        owner=Owner(host="a-host-far-away", pid=4242),
        run_id=f"run-{ident}",
        started_at=now + started,
        lease_until=now + lease,
        execute_at=now - timedelta(hours=1),
    )


def test_leases_and_starts_in_the_future_are_bounded_and_flagged(tmp_path: Path, cli: CliRunner) -> None:
    store = JsonFileStore(QUEUE)
    century = timedelta(days=365 * 75)
    store.add(running_elsewhere("longlease", started=-timedelta(minutes=30), lease=century), unchanged)
    store.add(running_elsewhere("fastclock", started=century, lease=century), unchanged)
    store.add(running_elsewhere("honest", started=-timedelta(minutes=1), lease=timedelta(minutes=5)), unchanged)
    workflow = write_script(tmp_path / "fetch.sh", "exit 0\n")
    env = {"RETRYQ_COMMAND": str(workflow)}
    doctor = invoke(cli, "doctor", env=env)
    year = (utcnow() + century).year
    assert f"job longlease (longlease 2025-12-19 #1) is stuck running: holds a lease until {year}-" in doctor.stdout
    assert "beyond what the configuration allows" in doctor.stdout
    assert "job fastclock (fastclock 2025-12-19 #1) is stuck running: started in the future" in doctor.stdout
    assert "honest" not in doctor.stdout
    invoke(cli, "process", env=env)
    jobs = {job.id: job for job in store.load()}
    assert jobs["longlease"].history[0].outcome is Outcome.INTERRUPTED
    assert jobs["fastclock"].history[0].outcome is Outcome.INTERRUPTED
    assert jobs["honest"].status is JobStatus.RUNNING


# -- 8. a workflow pid that is not the job's own ---------------------------------------------------


@pytest.mark.slow
def test_recovery_never_signals_a_process_that_is_not_the_runs_own(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group of its own, no RETRYQ_RUN_ID
    # What the dead runner's workflow left running: it carries the run's id, and must be stopped.
    leftover = subprocess.Popen(["sleep", "60"], env={**os.environ, "RETRYQ_RUN_ID": "run-1"}, start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        store = JsonFileStore(QUEUE)
        job = make_job(
            id="orphan",
            status=JobStatus.RUNNING,
            owner=Owner(host=os.uname().nodename, pid=gone.pid),  # its runner is dead
            run_id="run-1",
            workflow_pid=bystander.pid,  # a hand edit, or a pid reused since it was recorded
            started_at=utcnow() - timedelta(minutes=1),
            lease_until=utcnow() + timedelta(minutes=5),
        )
        store.add(job, unchanged)
        queue = RetryQueue(store, config=make_config(["true"], kill_grace=timedelta(seconds=1)))
        report = process(queue)
        assert report.recovered == 1
        assert leftover.wait(timeout=30) == -signal.SIGTERM
        assert bystander.poll() is None, "retryq signalled a process group that was not the run's"
    finally:
        for child in (bystander, leftover):
            child.kill()
            child.wait()


# -- 10. temp files left by a kill during a write ----------------------------------------------------


def test_stale_temp_files_of_the_queue_are_removed_under_the_lock(cli: CliRunner) -> None:
    env = {"RETRYQ_COMMAND": "true"}
    invoke(cli, "schedule", "a", "2025-12-19", env=env)
    stale = Path("..retry-queue.json.k1ll3d.tmp")
    stale.write_text("[]\n")
    old = time.time() - 600
    os.utime(stale, (old, old))
    fresh = Path("..retry-queue.json.wr1t1ng.tmp")
    fresh.write_text("[]\n")
    other = Path(".other-queue.json.abc.tmp")
    other.write_text("[]\n")
    os.utime(other, (old, old))
    doctor = invoke(cli, "doctor", env=env)
    assert "warning: queue: 1 temp file left by an interrupted write" in doctor.stdout
    invoke(cli, "schedule", "b", "2025-12-19", env=env)
    assert not stale.exists()
    assert fresh.exists()  # a write may be under way
    assert other.exists()  # another queue's is not ours


# -- 11. processes that leave the workflow's group ---------------------------------------------------


@pytest.mark.slow
def test_a_detached_child_is_stopped_when_its_run_ends(tmp_path: Path, retryq_bin: str) -> None:
    pidfile = tmp_path / "child.pid"
    script = write_script(
        tmp_path / "fetch.sh",
        f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' > /dev/null 2>&1 < /dev/null &\n"
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done\nexit 0\n",
    )
    env = {**os.environ, "RETRYQ_COMMAND": str(script)}
    subprocess.run([retryq_bin, "schedule", "a", "2025-12-19", "0"], env=env, check=True, capture_output=True)
    result = subprocess.run([retryq_bin, "process"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    child = int(pidfile.read_text())
    assert not pid_alive(child), "a process of the run outlived it (it left its group with setsid)"
    assert "stopped 1 process the run left behind" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_a_detached_child_when_it_is_interrupted(tmp_path: Path, retryq_bin: str, sig: int) -> None:
    pidfile = tmp_path / "child.pid"
    script = write_script(
        tmp_path / "fetch.sh",
        f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' > /dev/null 2>&1 < /dev/null &\nexec sleep 60\n",
    )
    env = {**os.environ, "RETRYQ_COMMAND": str(script)}
    run = subprocess.Popen([retryq_bin, "run", "a", "2025-12-19"], env=env, stderr=subprocess.PIPE, text=True)
    wait_for(pidfile)
    while not pidfile.read_text().strip():
        time.sleep(0.01)
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + sig
    assert not pid_alive(int(pidfile.read_text()))
    assert "stopped 1 process the run left behind" in stderr


def test_a_timeout_override_may_shorten_but_not_lengthen_the_configured_one(cli: CliRunner) -> None:
    """A run longer than the configured timeout would outlive the lease other processes trust."""
    env = {"RETRYQ_COMMAND": "true"}
    longer = invoke(cli, "process", "--timeout", "2h", env=env)
    assert longer.exit_code == 2
    assert "--timeout 2h is longer than the timeout of workflow 'default' (5m)" in longer.stderr
    assert invoke(cli, "process", "--timeout", "1m", env=env).exit_code == 0

"""retryq export and retryq import: moving a queue between stores, with nothing changed or lost."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import Attempt, Job, JobStatus, Outcome, Owner
from retryq.stores.transfer import ARCHIVE_MARKER

from ..helpers import LEGACY_FILE, T0, invoke, make_job


def unchanged(job: Job) -> Job:
    return job


def varied_jobs() -> list[Job]:
    """Jobs in every state, with what a move could lose: unknown keys, history, owners, non-ASCII text."""
    tried = Attempt(attempt=1, started_at=T0, finished_at=T0 + timedelta(seconds=3), outcome=Outcome.INCOMPLETE)
    return [
        make_job(id="pending1", client_id="balthazar"),
        Job.model_validate(
            {
                **make_job(id="foreign", client_id="acme", date="2025-12-20").to_json_dict(),
                "ticket": {"system": "jira", "key": "OPS-12"},
                "note": "relancé à 11 h",
            }
        ),
        make_job(
            id="running1",
            client_id="carrefour",
            status=JobStatus.RUNNING,
            owner=Owner(host="h1", pid=4242, boot_id="b", started=77),
            run_id="r" * 32,
            started_at=T0,
            lease_until=T0 + timedelta(minutes=36),
            attempt=2,
            history=(tried,),
        ),
        make_job(id="done1", client_id="balthazar", date="2025-12-18", status=JobStatus.COMPLETED, finished_at=T0),
        make_job(id="failed1", client_id="dupont", workflow="ftp", status=JobStatus.FAILED, finished_at=T0),
    ]


def file_queue(path: Path) -> JsonFileStore:
    store = JsonFileStore(path)
    for job in varied_jobs():
        store.add(job, unchanged)
    store.update({"done1": lambda job: None})  # to the archive
    return store


def exported(cli: CliRunner, queue: str, target: Path) -> bytes:
    result = invoke(cli, "--queue", queue, "export", "--archive", "--output", str(target))
    assert result.exit_code == 0, result.output
    return target.read_bytes()


# -- the format ---------------------------------------------------------------------------------------


def test_export_writes_each_job_as_the_file_holds_it_then_the_archive(tmp_path: Path, cli: CliRunner) -> None:
    queue = tmp_path / "q.json"
    file_queue(queue)
    result = invoke(cli, "--queue", str(queue), "export", "--archive")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    file_lines = [line.strip().rstrip(",") for line in queue.read_text().splitlines()[1:-1]]
    assert lines[:4] == file_lines
    assert lines[4] == ARCHIVE_MARKER
    assert [json.loads(line)["id"] for line in lines[5:]] == ["done1"]
    assert "exported 4 jobs and 1 archived job" in result.stderr
    assert "1 job running" in result.stderr  # their results would go to the old queue


def test_an_export_imports_into_an_empty_file_byte_for_byte(tmp_path: Path, cli: CliRunner) -> None:
    source = tmp_path / "q.json"
    file_queue(source)
    dump = exported(cli, str(source), tmp_path / "dump.jsonl")
    result = invoke(cli, "--queue", str(tmp_path / "new.json"), "import", str(tmp_path / "dump.jsonl"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"imported 4 jobs into {tmp_path / 'new.json'}; 1 archived job\n"
    assert (tmp_path / "new.json").read_bytes() == source.read_bytes()
    assert exported(cli, str(tmp_path / "new.json"), tmp_path / "again.jsonl") == dump


def test_importing_twice_adds_nothing_the_second_time(tmp_path: Path, cli: CliRunner) -> None:
    file_queue(tmp_path / "q.json")
    exported(cli, str(tmp_path / "q.json"), tmp_path / "dump.jsonl")
    target = ("--queue", str(tmp_path / "new.json"))
    assert invoke(cli, *target, "import", str(tmp_path / "dump.jsonl")).exit_code == 0
    before = (tmp_path / "new.json").read_bytes()
    again = invoke(cli, *target, "import", str(tmp_path / "dump.jsonl"), "--json")
    assert json.loads(again.stdout) == {
        "dryRun": False,
        "added": [],
        "alreadyThere": 4,
        "archived": [],
        "archivedAlreadyThere": 1,
    }
    assert (tmp_path / "new.json").read_bytes() == before


def test_a_dry_run_says_what_would_be_imported_and_writes_nothing(tmp_path: Path, cli: CliRunner) -> None:
    file_queue(tmp_path / "q.json")
    exported(cli, str(tmp_path / "q.json"), tmp_path / "dump.jsonl")
    result = invoke(cli, "--queue", str(tmp_path / "new.json"), "import", str(tmp_path / "dump.jsonl"), "--dry-run")
    assert result.stdout.startswith("would import 4 jobs")
    assert not (tmp_path / "new.json").exists()


def test_an_open_job_for_a_key_already_open_refuses_the_whole_import(tmp_path: Path, cli: CliRunner) -> None:
    file_queue(tmp_path / "q.json")
    exported(cli, str(tmp_path / "q.json"), tmp_path / "dump.jsonl")
    target = JsonFileStore(tmp_path / "new.json")
    target.add(make_job(id="mine", client_id="carrefour"), unchanged)  # running1's key, open here too
    before = (tmp_path / "new.json").read_bytes()
    result = invoke(cli, "--queue", str(tmp_path / "new.json"), "import", str(tmp_path / "dump.jsonl"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "nothing imported: job mine is already open for carrefour 2025-12-19" in result.stderr
    assert "(running1)" in result.stderr
    assert (tmp_path / "new.json").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"clientId": "a"\n', "line 1: not JSON"),
        ("[1, 2]\n", "line 1: not a JSON object"),
        (make_job().to_json_line() + '\n{"clientId": "b", "date": "2025-13-40"}\n', "line 2: not a job: "),
        (make_job().to_json_line() + "\n" + make_job().to_json_line() + "\n", "line 2: job job1 is there twice"),
        (
            make_job(id="x").to_json_line() + "\n" + make_job(id="y").to_json_line() + "\n",
            "jobs x and y are both open for balthazar 2025-12-19",
        ),
        ('{"retryqSection": "elsewhere"}\n', "unknown section 'elsewhere'"),
        (make_job().to_json_line().replace('"status"', '"note": "\\ud83d", "status"') + "\n", "line 1: not a job: "),
        ("\n" + make_job().to_json_line().replace('"status"', '"note": "\\u0000", "status"'), "line 2: not a job: "),
    ],
)
def test_a_bad_export_is_refused_with_the_line_and_nothing_is_written(
    tmp_path: Path, cli: CliRunner, content: str, message: str
) -> None:
    (tmp_path / "bad.jsonl").write_text(content)
    (tmp_path / "q.json").write_text(LEGACY_FILE)
    result = invoke(cli, "--queue", str(tmp_path / "q.json"), "import", str(tmp_path / "bad.jsonl"))
    assert result.exit_code == 65
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "q.json").read_text() == LEGACY_FILE


def test_text_with_line_separators_of_unicode_moves_whole(tmp_path: Path, cli: CliRunner) -> None:
    """U+2028, U+0085 or a form feed inside a job's text is not the end of its line."""
    note = "a\u2028b\u0085c\x0cd\x1ce"
    store = JsonFileStore(tmp_path / "q.json")
    store.add(Job.model_validate({**make_job().to_json_dict(), "note": note}), unchanged)
    export = tmp_path / "q.jsonl"
    exported(cli, str(tmp_path / "q.json"), export)
    result = invoke(cli, "--queue", str(tmp_path / "copy.json"), "import", str(export))
    assert result.exit_code == 0, result.output
    [job] = JsonFileStore(tmp_path / "copy.json").load()
    assert job.extra_keys == {"note": note}


def test_import_reads_stdin_and_a_missing_file_is_one_line(tmp_path: Path, cli: CliRunner) -> None:
    line = make_job(id="piped").to_json_line() + "\n"
    result = cli.invoke(_app(), ["--queue", str(tmp_path / "q.json"), "import", "-"], input=line)
    assert result.exit_code == 0
    assert [job.id for job in JsonFileStore(tmp_path / "q.json").load()] == ["piped"]
    missing = invoke(cli, "import", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    assert "nope.jsonl: no such file" in missing.stderr


def test_export_refuses_records_that_are_not_jobs_unless_told(tmp_path: Path, cli: CliRunner) -> None:
    queue = tmp_path / "q.json"
    good = make_job(id="good").to_json_dict()
    queue.write_text(json.dumps([good, {"clientId": "x", "date": "nope"}]))
    refused = invoke(cli, "--queue", str(queue), "export")
    assert refused.exit_code == 65
    assert "would be left behind" in refused.stderr
    assert refused.stdout == ""
    skipped = invoke(cli, "--queue", str(queue), "export", "--skip-invalid")
    assert skipped.exit_code == 0
    assert [json.loads(line)["id"] for line in skipped.stdout.splitlines()] == ["good"]
    assert "not exported" in skipped.stderr


def test_records_of_the_original_scripts_export_with_their_derived_id(tmp_path: Path, cli: CliRunner) -> None:
    (tmp_path / "q.json").write_text(LEGACY_FILE)
    listed = json.loads(invoke(cli, "--queue", str(tmp_path / "q.json"), "list", "--json").stdout)
    [line] = invoke(cli, "--queue", str(tmp_path / "q.json"), "export").stdout.splitlines()
    assert json.loads(line)["id"] == listed[0]["id"]
    assert (tmp_path / "q.json").read_text() == LEGACY_FILE  # exporting writes nothing


def test_an_archive_imported_where_archiving_is_off_is_said(tmp_path: Path, cli: CliRunner) -> None:
    file_queue(tmp_path / "q.json")
    exported(cli, str(tmp_path / "q.json"), tmp_path / "dump.jsonl")
    (tmp_path / "retryq.toml").write_text("archive = false\n")
    result = invoke(cli, "--queue", str(tmp_path / "new.json"), "import", str(tmp_path / "dump.jsonl"))
    assert result.exit_code == 0
    assert "1 archived job not imported: this queue keeps no archive" in result.stderr


def test_an_output_file_is_replaced_whole(tmp_path: Path, cli: CliRunner) -> None:
    file_queue(tmp_path / "q.json")
    target = tmp_path / "dump.jsonl"
    target.write_text("old content that is longer than nothing\n" * 100)
    assert invoke(cli, "--queue", str(tmp_path / "q.json"), "export", "-o", str(target)).exit_code == 0
    assert len(target.read_text().splitlines()) == 4
    assert not list(tmp_path.glob(".dump.jsonl.*"))
    unwritable = invoke(cli, "--queue", str(tmp_path / "q.json"), "export", "-o", str(tmp_path / "no" / "x.jsonl"))
    assert unwritable.exit_code == 74
    assert "cannot write" in unwritable.stderr


# -- between backends ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server",
    [pytest.param("postgres_queue", marks=pytest.mark.postgres), pytest.param("redis_queue", marks=pytest.mark.redis)],
)
def test_json_file_to_a_server_and_back_changes_nothing(
    tmp_path: Path, cli: CliRunner, server: str, request: pytest.FixtureRequest
) -> None:
    queue: str = request.getfixturevalue(server)
    source = tmp_path / "q.json"
    file_queue(source)
    dump = exported(cli, str(source), tmp_path / "dump.jsonl")
    into_db = invoke(cli, "--queue", queue, "import", str(tmp_path / "dump.jsonl"))
    assert into_db.exit_code == 0, into_db.output
    assert into_db.stdout.startswith(f"imported 4 jobs into {queue.split('://', maxsplit=1)[0]}://")
    assert exported(cli, queue, tmp_path / "from-db.jsonl") == dump
    for command in (["list", "--json", "--sort", "queue"], ["show", "foreign", "--json"], ["stats", "--json"]):
        from_file = invoke(cli, "--queue", str(source), *command)
        from_db = invoke(cli, "--queue", queue, *command)
        assert (from_db.exit_code, from_db.stdout) == (from_file.exit_code, from_file.stdout), command
    back = tmp_path / "back.json"
    assert invoke(cli, "--queue", str(back), "import", str(tmp_path / "from-db.jsonl")).exit_code == 0
    assert back.read_bytes() == source.read_bytes()
    assert (
        back.with_name("back.json.archive.jsonl").read_bytes() == source.with_name("q.json.archive.jsonl").read_bytes()
    )
    again = invoke(cli, "--queue", queue, "import", str(tmp_path / "dump.jsonl"))
    assert again.stdout.startswith("imported 0 jobs")


def _app():  # type: ignore[no-untyped-def]
    from retryq.cli import app

    return app

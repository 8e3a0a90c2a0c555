"""How the examples of the docs are found and their output matched (tests/docs_examples.py), and which are not run."""

from __future__ import annotations

from pathlib import Path

import pytest

from .. import docs_examples
from ..docs_examples import Block, Mismatch, match, substitute

#: Every block of the README and docs/ that is not run (generated pages aside), by page, language and
#: first line. A block added in a language that is not run must be added here, knowingly.
UNCOLLECTED: list[tuple[str, str, str]] = [
    ("README.md", "sh", "pip install .                      # the command and the library"),
    ("README.md", "sh", "make demo"),  # tests/system/test_demo.py runs the demo; `make test` is the suite itself
    ("README.md", "crontab", "*/5 * * * * cd /srv/app && retryq process >> /srv/app/retry.log 2>&1"),
    ("docs/architecture.md", "text", "retryq/"),  # read by tests/unit/test_architecture.py
    ("docs/backends.md", "sh", "export RETRYQ_QUEUE=postgresql://retryq@db.internal/jobs   # the environment"),
    ("docs/backends.md", "sh", "retryq --queue .retry-queue.json export --archive --output queue.jsonl"),
    ("docs/concepts.md", "text", "            schedule / report"),
    (
        "docs/configuration-guide.md",
        "text",
        "retryq: error: retryq.toml: workflows.ftp-import.max_attemps: unknown key in [workflows.ftp-import];"
        " did you mean `max_attempts`?",
    ),
    (
        "docs/development.md",
        "sh",
        "make demo    # set up .venv, then run the whole loop on the default queue file, in ./demo",
    ),
    (
        "docs/fetcher.md",
        "crontab",
        '55 3 * * *  cd /srv/app && retryq schedule assurance "$(date +\\%F)" 60 --at 04:00 --workflow assurance-import'
        " >> retry.log 2>&1",
    ),
    ("docs/getting-started.md", "sh", "pip install .                      # from a clone: the command and the library"),
    ("docs/getting-started.md", "crontab", '--8<-- "crontab.example"'),
    ("docs/getting-started.md", "ini", '--8<-- "retryq.service.example"'),
    ("docs/getting-started.md", "batch", '--8<-- "schtasks.example.cmd"'),
    (
        "docs/incidents.md",
        "text",
        "2025-12-19T11:05:00.412Z held: workflow default, incident default-20251219T110004Z open since"
        " 2025-12-19T11:00:04.127Z, next probe 2025-12-19T11:15:04.127Z (20 jobs due)",
    ),
    (
        "docs/index.md",
        "text",
        "2025-12-19T10:00:02.311Z balthazar 2025-12-19 warning: DEGRADED: 3 of 650 missing (0.46%), tolerated"
        " (at most 3, or at most 0.50%); retry scheduled in 60 minutes: job 7ff34e211f074aba, due"
        " 2025-12-19T11:00:02.310Z, attempt 1 of 3",
    ),
    (
        "docs/recurring.md",
        "text",
        "retryq: error: retryq.toml: schedules.attachments-maintenance.cron: invalid cron expression"
        " '0 24 * * *': bad hour",
    ),
    (
        "docs/recurring.md",
        "text",
        "2025-12-19T01:55:00.410Z schedule sync-updated-dossiers: first seen; next occurrence 2025-12-19T02:00:00.000Z",
    ),
    ("docs/redis.md", "sh", "pip install 'retryq[redis]'        # redis-py 5 or later"),
    ("docs/redis.md", "sh", "retryq --queue .retry-queue.json export --archive --output queue.jsonl"),
    ("docs/redis.md", "text", "# redis.conf"),
    ("docs/redis.md", "text", "ok: queue: Redis 7.0.15 reachable, keys {retryq}:*, 120 jobs, layout version 1"),
    (
        "docs/retrying.md",
        "text",
        "fetch_notices: attempt 1/3 failed: ConnectionError('source down'); retrying in 1.00s",
    ),
]


def block(text: str, language: str = "console") -> Block:
    return Block("docs/x.md", 10, language, None, text)


def test_a_time_matches_any_time_and_text_must_match_exactly() -> None:
    match("2025-12-19T10:00:02.311Z summary: processed 1", "2026-01-02T03:04:05.678Z summary: processed 1", {})
    with pytest.raises(Mismatch):
        match("2025-12-19T10:00:02.311Z summary: processed 1", "2026-01-02T03:04:05.678Z summary: processed 2", {})


def test_a_shown_id_stands_for_the_same_real_id_wherever_it_appears() -> None:
    names: dict[str, str] = {}
    match("job 7ff34e211f074aba due", "job 0123456789abcdef due", names)
    assert names == {"7ff34e211f074aba": "0123456789abcdef", "7ff34e21": "01234567"}
    match("7ff34e21  balthazar", "01234567  balthazar", names)
    with pytest.raises(Mismatch):
        match("7ff34e21  balthazar", "fedcba98  balthazar", names)
    assert substitute("retryq show 7ff34e21", names) == "retryq show 01234567"


def test_two_different_shown_ids_in_one_output_may_not_be_one_real_id_twice_only_if_shown_twice() -> None:
    match("a 7ff34e211f074aba b 7ff34e211f074aba", "a 0123456789abcdef b 0123456789abcdef", {})
    with pytest.raises(Mismatch):
        match("a 7ff34e211f074aba b 7ff34e211f074aba", "a 0123456789abcdef b 1123456789abcdef", {})


def test_an_ellipsis_matches_text_in_a_line_and_a_line_of_it_any_lines() -> None:
    match("mean …, max …\n…\nend", "mean 1h2m, max 2h\nmore\nlines\nend", {})
    match("start\n…\nend", "start\nend", {})
    with pytest.raises(Mismatch):
        match("mean …", "median 1h", {})


def test_trailing_spaces_and_blank_lines_do_not_count_but_missing_lines_do() -> None:
    match("a  \nb\n\n", "a\nb", {})
    match("", "", {})
    with pytest.raises(Mismatch):
        match("a\nb", "a", {})
    with pytest.raises(Mismatch):
        match("", "something printed", {})


def test_a_console_block_is_split_into_commands_and_their_output() -> None:
    found = docs_examples.commands(block("$ retryq list \\\n  --json\n[]\n$ retryq stats\nno jobs\n"))
    assert [(c.line, c.command, c.output) for c in found] == [
        (11, "retryq list \n  --json", "[]"),
        (14, "retryq stats", "no jobs"),
    ]
    with pytest.raises(ValueError, match="output before any"):
        docs_examples.commands(block("output\n$ retryq list\n"))


def test_a_pycon_block_is_split_into_statements_and_their_output() -> None:
    found = docs_examples.pycon_examples(block(">>> x = 1\n>>> for i in range(2):\n...     print(i)\n0\n1\n", "pycon"))
    assert [(e.line, e.source, e.output) for e in found] == [
        (11, "x = 1\n", ""),
        (12, "for i in range(2):\n    print(i)\n", "0\n1"),
    ]


def test_fences_are_read_with_their_language_title_and_indentation(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "p.md"
    page.write_text('Text\n\n- item:\n\n  ```toml title="retryq.toml"\n  a = 1\n  ```\n\n````text\n```\n````\n')
    assert docs_examples.blocks(page, tmp_path) == [
        Block("docs/p.md", 5, "toml", "retryq.toml", "a = 1\n"),
        Block("docs/p.md", 9, "text", None, "```\n"),
    ]


ALL = docs_examples.all_blocks()


def test_every_block_says_its_language_and_the_language_is_known() -> None:
    unknown = [
        f"{b.name}: {b.language or 'no language'}"
        for b in ALL
        if b.page not in docs_examples.GENERATED
        and b.language not in docs_examples.RUN
        and b.language not in docs_examples.NOT_RUN
    ]
    assert unknown == [], "give each block a language: one that runs, or one of NOT_RUN"


def test_the_blocks_that_are_not_run_are_the_listed_ones() -> None:
    found = [(b.page, b.language, b.text.splitlines()[0] if b.text else "") for b in docs_examples.uncollected(ALL)]
    assert found == UNCOLLECTED


def test_nothing_runnable_hides_in_a_block_that_is_not_run() -> None:
    hidden = [
        f"{b.name}: {line}"
        for b in ALL
        if not b.runs
        for line in b.text.splitlines()
        if line.startswith(("$ ", ">>> "))
    ]
    assert hidden == [], "a shell session is a console block, a >>> session a pycon block: both run"


def test_examples_are_collected_from_the_readme_and_the_docs() -> None:
    runs = [b for b in ALL if b.runs]
    assert {b.page for b in runs} >= {"README.md", "docs/getting-started.md"}


def test_durations_and_column_alignment_vary_and_match() -> None:
    match("a  2025-12-19T11:00:02.310Z in 59m59s  b", "a    2026-01-01T00:00:00.000Z in 1h      b", {})
    with pytest.raises(Mismatch):
        match("a  b", "a b", {})

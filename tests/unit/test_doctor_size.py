"""`doctor`'s warning about a queue rewritten whole that has grown past what a change costs in 50 ms."""

from __future__ import annotations

from retryq.reporting.doctor import SLOW_DOCUMENT_BYTES, SLOW_MARKED_DOCUMENT_BYTES, diagnose, document_size_finding
from retryq.stores import MemoryStore

from ..helpers import T0, make_config, make_job


def test_no_warning_up_to_the_measured_size_nor_for_a_store_without_one() -> None:
    assert document_size_finding("q.json", SLOW_DOCUMENT_BYTES, 9_000) is None
    assert document_size_finding("q.json", 1_000, 2) is None
    assert document_size_finding("postgresql://db/jobs", None, 500_000) is None


def test_past_it_a_warning_names_the_size_and_the_remedies() -> None:
    finding = document_size_finding("q.json", 64_759_092, 100_000)
    assert finding is not None
    assert finding.level == "warning"
    assert finding.message.startswith(
        f"queue: q.json holds 64.8 MB (100000 jobs); past about {SLOW_DOCUMENT_BYTES / 1e6:.0f} MB, each change "
        "of the file (a schedule, a result) takes more than 50 ms"
    )
    for remedy in ("keep_days", "`retryq prune`", "archive = true", "PostgreSQL or Redis", "retryq export"):
        assert remedy in finding.message


def test_a_file_marked_clean_is_warned_about_later_and_an_unmarked_one_says_why_it_is_slow() -> None:
    between = (SLOW_DOCUMENT_BYTES + SLOW_MARKED_DOCUMENT_BYTES) // 2
    assert document_size_finding("q.json", between, 20_000, marked=True) is None
    assert document_size_finding("q.json", SLOW_MARKED_DOCUMENT_BYTES + 1, 40_000, marked=True) is not None
    unmarked = document_size_finding("q.json", between, 20_000)
    assert unmarked is not None
    assert "every command checks each of its records" in unmarked.message
    assert "extended attributes" in unmarked.message


class _GrownStore(MemoryStore):
    document_bytes = SLOW_DOCUMENT_BYTES + 1


def test_doctor_says_it_for_a_store_that_tells_its_size() -> None:
    config = make_config(["true"])
    findings = diagnose(config, _GrownStore([make_job()]), now=T0)
    assert [finding.level for finding in findings if "each change of the file" in finding.message] == ["warning"]
    assert not any("each change of the file" in f.message for f in diagnose(config, MemoryStore(), now=T0))

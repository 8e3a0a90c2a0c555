"""Moving a queue from one store to another: its jobs (and its archive) as lines of JSON, and back.

The format is what ``retryq export`` writes and ``retryq import`` reads: one job per line, each
exactly as the queue file holds it (unknown keys kept). With the archive, a line
``{"retryqSection": "archive"}`` comes before the archived jobs. A file of plain job lines (a
queue's archive file, ``jq`` output) is a valid export of jobs.
"""

from __future__ import annotations

__all__ = ["ARCHIVE_MARKER", "Export", "dump", "load", "parse"]

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from ..record.errors import OpenJobExists, QueueCorrupt
from ..record.models import Job, describe_validation_error, json_line
from ..record.text import plural
from . import Insertion, Store

SECTION = "retryqSection"
#: The line before the archived jobs.
ARCHIVE_MARKER = json_line({SECTION: "archive"})


@dataclass(frozen=True)
class Export:
    """The jobs of an export, and its archived jobs (the last copy of each)."""

    jobs: tuple[Job, ...] = ()
    archived: tuple[Job, ...] = ()


def dump(store: Store, *, archive: bool = False, skip_invalid: bool = False) -> Iterator[str]:
    """The lines of an export of ``store`` (without their newlines), read before the first is given.

    A record that is not a valid job cannot be imported anywhere: it raises
    :class:`~retryq.record.errors.QueueCorrupt` (nothing is exported) unless ``skip_invalid``.
    """
    problems = store.invalid()
    if problems and not skip_invalid:
        raise QueueCorrupt(
            f"{problems[0]}; {plural(len(problems), 'record that is not a job', 'records that are not jobs')} "
            "would be left behind: "
            "mend or remove them (retryq doctor says where), or export with --skip-invalid"
        )
    jobs = store.load()
    archived = list(store.load_archive()) if archive else []
    lines = [job.to_json_line() for job in jobs]
    if archive:
        lines += [ARCHIVE_MARKER, *(job.to_json_line() for job in archived)]
    return iter(lines)


def parse(lines: Iterable[str], source: str) -> Export:
    """Read an export; any line that is not a job raises :class:`~retryq.record.errors.QueueCorrupt` naming it.

    The jobs must have one id each and at most one open job per workflow, client and date (as a
    queue has); an archived job given twice counts once, the last copy.
    """
    jobs: dict[str, Job] = {}
    archived: dict[str, Job] = {}
    section = jobs
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = f"{source}: line {number}"
        try:
            record = json.loads(text)
        except ValueError as error:
            raise QueueCorrupt(f"{where}: not JSON ({error})") from None
        if isinstance(record, dict) and set(record) == {SECTION}:
            if record[SECTION] not in ("jobs", "archive"):
                raise QueueCorrupt(f"{where}: unknown section {record[SECTION]!r} (known: jobs, archive)")
            section = jobs if record[SECTION] == "jobs" else archived
            continue
        if not isinstance(record, dict):
            raise QueueCorrupt(f"{where}: not a JSON object")
        try:
            job = Job.model_validate(record)
        except ValidationError as error:
            raise QueueCorrupt(f"{where}: not a job: {describe_validation_error(error)}") from None
        if section is jobs and job.id in jobs:
            raise QueueCorrupt(f"{where}: job {job.id} is there twice")
        section.pop(job.id, None)
        section[job.id] = job
    open_keys: dict[object, str] = {}
    for job in jobs.values():
        if job.status.is_open:
            if job.key in open_keys:
                raise QueueCorrupt(f"{source}: jobs {open_keys[job.key]} and {job.id} are both open for {job.key}")
            open_keys[job.key] = job.id
    return Export(tuple(jobs.values()), tuple(archived.values()))


def load(store: Store, export: Export, *, dry_run: bool = False) -> Insertion:
    """Add an export's jobs to ``store``, once (see :meth:`~retryq.stores.Store.insert`); all or nothing."""
    try:
        return store.insert(export.jobs, export.archived, dry_run=dry_run)
    except OpenJobExists as error:
        raise OpenJobExists(
            f"nothing imported: {error}, and the import holds another open one ({error.job_ids[0]}); "
            "cancel one of them and import again",
            error.job_ids,
        ) from None

"""The queue file's bytes: a JSON array with one record per line, read record by record (each line
kept, for a later write to reuse) or validated whole (for reading), and written back."""

from __future__ import annotations

__all__ = ["added", "all_jobs_valid", "every_job_of", "layout", "parse", "parse_lines"]

import gc
import itertools
import json
import sys
from collections.abc import Callable
from json.scanner import make_scanner
from typing import Any

from pydantic import ValidationError

from ...record.errors import QueueCorrupt
from ...record.models import Job, job_list
from ..entry import _Entry, open_job_of

#: What a schedule found: the job stored and whether it is new, and the file's new bytes (None: unchanged).
Added = tuple[tuple[Job, bool], bytes | None]

#: From this size on, a file is first checked by the fast path. Below it, a command spends more
#: importing and building the fast path than validating models: measured, 400 jobs (261 KiB) take
#: 10.6 ms by the models and 17.1 ms by the fast path with its import; 800 jobs, 24.6 and 20.5 ms.
FAST_CHECK_BYTES = 512 * 1024

_SCANNER = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed mistypes its argument


def parse(raw: bytes, where: str) -> list[_Entry]:
    """The records of a queue file, each kept as it is, job or not; raises QueueCorrupt naming where it breaks."""
    entries = parse_lines(raw)
    if entries is not None:
        return entries
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise QueueCorrupt(f"{where}: not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise QueueCorrupt(f"{where}: the file is empty; a queue file holds a JSON array (write [] to start afresh)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise QueueCorrupt(
            f"{where}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(data, list):
        raise QueueCorrupt(f"{where}: expected a JSON array of jobs, found a JSON {_json_type(data)}")
    # Each element is kept, job or not: a record that is not a valid job is reported, never dropped.
    return [_Entry(index, doc=doc) for index, doc in enumerate(data)]


def layout(lines: list[bytes]) -> bytes:
    """The file's bytes: ``[``, one job per line separated by commas, ``]``.

    Built with a single join of the whole queue (its first and last lines copied once more, with
    the brackets), so that a 10,000-job queue is not copied twice in memory on every write.
    """
    if not lines:
        return b"[]\n"
    if len(lines) == 1:
        return b"".join((b"[\n", lines[0], b"\n]\n"))
    first, last = b"[\n" + lines[0], lines[-1] + b"\n]\n"
    return b",\n".join((first, *itertools.islice(lines, 1, len(lines) - 1), last))


def parse_lines(raw: bytes) -> list[_Entry] | None:
    """Read a file in retryq's own layout (one record per line) record by record, keeping each line's bytes.

    Keeping the lines means a later write re-serializes only the jobs it changed, and the file
    is never held twice in memory as bytes and text. Anything else (a file written by other
    tools, or damaged) returns None and is parsed as a whole, which also gives the exact
    position of an error.
    """
    if not (raw.startswith(b"[\n") and raw.endswith(b"\n]\n")):
        return None
    lines = raw[2:-3].split(b"\n")
    last = len(lines) - 1
    entries = []
    scan = _SCANNER  # json's own C scanner, without json.loads' per-call encoding detection
    for index, chunk in enumerate(lines):
        if index < last:
            if not chunk.endswith(b","):
                return None  # not valid JSON: the whole-file parse says where
            line = chunk[:-1]
        else:
            line = chunk
        try:
            text = line.decode("utf-8")
            doc, end = scan(text, 0)
        except (ValueError, StopIteration):  # also UnicodeDecodeError
            return None
        if end != len(text):
            return None
        entries.append(_Entry(index, doc=doc, line=line))
    return entries


def added(raw: bytes, job: Job, on_open: Callable[[Job], Job | None]) -> Added | None:
    """Add ``job`` to a file in retryq's layout, reading only the records that may hold its key.

    A record holds the job's key only if its line spells the client id as it is (a client id is
    letters, digits, ``.``, ``_`` and ``-``, which JSON writes as they are) or holds a ``\\u``
    escape, which could spell it otherwise: only those lines are parsed; every other record is
    copied as bytes, unread. The first open job of the key, in file order, is passed to
    ``on_open`` as the generic path does. None when the file is not in that layout, or a line
    read is not JSON: the caller then reads the file whole, which says what is wrong.
    """
    line = _Entry.of(job).line()
    if raw == b"[]\n":
        return (job, True), layout([line])
    spans = _lines_that_may_hold(raw, job.client_id)
    if spans is None:
        return None
    entries = [(span, _entry_of(raw[span[0] : span[1]])) for span in spans]
    if any(entry is None for _, entry in entries):
        return None
    found = open_job_of(((span, entry) for span, entry in entries if entry is not None), job.key, on_open)
    if found is None:
        return (job, True), b"".join((memoryview(raw)[:-3], b",\n", line, b"\n]\n"))
    (start, end), existing, updated = found
    if updated is existing:
        return (existing, False), None
    return (updated, False), b"".join((raw[:start], _Entry.of(updated).line(), raw[end:]))


def _lines_that_may_hold(raw: bytes, client: str) -> list[tuple[int, int]] | None:
    """The lines (start, end, without their comma), in file order, that spell ``"client"`` or hold a
    ``\\u`` escape; None when the file is not one record per line between ``[`` and ``]``."""
    if not (raw.startswith(b"[\n") and raw.endswith(b"\n]\n")):
        return None
    last = len(raw) - 3  # where the last record's line ends
    spans: dict[int, int] = {}
    for found in _escapes(raw, last) + _occurrences(raw, b'"' + client.encode("ascii") + b'"', last):
        start = raw.rfind(b"\n", 0, found) + 1
        if start in spans:
            continue
        end = raw.find(b"\n", found)
        if end < last:
            if raw[end - 1] != 0x2C:  # a line but the last ends with the comma before the next
                return None
            end -= 1
        spans[start] = end
    return sorted(spans.items())


def _occurrences(raw: bytes, needle: bytes, stop: int, start: int = 2) -> list[int]:
    found, at = [], raw.find(needle, start, stop)
    while at >= 0:
        found.append(at)
        at = raw.find(needle, at + len(needle), stop)
    return found


def _escapes(raw: bytes, stop: int) -> list[int]:
    """Where ``\\u`` escapes may start. Backslashes are found with memchr and each escape skips the
    character it escapes (``\\\\u`` is none): fast where they are rare (a queue written by retryq
    escapes only control characters). In a file full of workflow output, with a ``\\n`` in every
    record, the rest is searched for the two bytes together, ten times slower per byte but without
    a turn of this loop per backslash."""
    found: list[int] = []
    at, turns = raw.find(b"\\", 2, stop), len(raw) >> 12
    while at >= 0:
        turns -= 1
        if turns < 0:
            return found + _occurrences(raw, b"\\u", stop, at)  # also finds \\u: one more line read, no harm
        if raw[at + 1] == 0x75:  # "u"
            found.append(at)
        at = raw.find(b"\\", at + 2, stop)
    return found


def _entry_of(line: bytes) -> _Entry | None:
    """One record parsed from its line, or None when the line is not one JSON value."""
    try:
        text = line.decode("utf-8")
        doc, end = _SCANNER(text, 0)
    except (ValueError, StopIteration):  # also UnicodeDecodeError
        return None
    return _Entry(-1, doc=doc, line=line) if end == len(text) else None


def every_job_of(raw: bytes) -> list[Job]:
    """A JSON array of jobs, validated in one pass; raises ValidationError (also for what is not JSON).

    The cyclic garbage collector is paused meanwhile: the jobs hold no cycles, and its passes over
    every object made so far would double the time at 100,000 jobs (measured: 2.7 s against 1.2 s).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return job_list().validate_json(raw)
    finally:
        if paused:
            gc.enable()


def all_jobs_valid(raw: bytes, *, slice_of: int = 500) -> bool:
    """Whether every record of a queue file is a valid job, validated ``slice_of`` records at a time
    (by the fast path of :mod:`retryq.record.views`, and by the models where it cannot vouch).

    What `process` checks at each start: each slice's jobs are dropped before the next is read, so
    the check holds a few hundred models and a few hundred lines' bytes, never one per job. A file
    not in retryq's layout is validated whole; so is one whose lines do not split into records (a
    pretty-printed object spans lines), which then fails here and is read record by record, as
    any invalid file is.
    """
    fast = len(raw) >= FAST_CHECK_BYTES or "retryq.record.views" in sys.modules  # then it costs next to nothing
    if not (raw.startswith(b"[\n") and raw.endswith(b"\n]\n")):
        return _valid(raw, fast)
    view = memoryview(raw)
    start, body_end = 2, len(raw) - 3  # raw[start:body_end]: the records, one per line
    while start <= body_end:
        stop = start - 1
        for _ in range(slice_of):
            stop = raw.find(b"\n", stop + 1, body_end)
            if stop < 0:
                stop = body_end
                break
        # Every line but the file's last ends with the comma that separates it from the next.
        end = stop - 1 if stop > start and raw[stop - 1] == 0x2C else stop
        if not _valid(b"".join((b"[", view[start:end], b"]")), fast):
            return False
        start = stop + 1
    return True


def _valid(raw: bytes, fast: bool) -> bool:
    if fast:
        from ...record.views import views_of

        if views_of(raw) is not None:
            return True  # what the fast path accepts, the models do: no model per job
    try:
        every_job_of(raw)
    except ValidationError:
        return False
    return True


def _json_type(value: Any) -> str:
    names = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)

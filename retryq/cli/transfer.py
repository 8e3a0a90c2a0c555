"""Commands that move a queue between stores: export and import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..record.errors import InvalidInput, StoreIOError
from ..record.text import plural
from ._app import DryRunOption, JsonOption, app, echo_json, open_queue, warn, warn_invalid


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Write to this file (replaced whole, or not at all) [default: stdout].",
        ),
    ] = None,
    archive: Annotated[bool, typer.Option("--archive", help="Also export the archive of pruned jobs.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Leave out records that are not jobs, instead of refusing.")
    ] = False,
) -> None:
    """Write every job of the queue as JSON lines, to move it to another store.

    Each line is a job as the queue file holds it. Stop cron's `retryq process` first: a run
    that ends after the export writes its result to the old queue only.

    \b
    Example:
        retryq export --archive --output queue.jsonl
        retryq --queue postgresql://retryq@db/jobs import queue.jsonl
    """
    from ..record.models import JobStatus
    from ..stores._atomic import replace_file
    from ..stores.transfer import ARCHIVE_MARKER, dump

    queue = open_queue(ctx)
    lines = list(dump(queue.store, archive=archive, skip_invalid=skip_invalid))
    if skip_invalid:
        warn_invalid(queue, "not exported")
    running = sum(1 for job in queue.store.load() if job.status is JobStatus.RUNNING)
    if running:
        warn(f"{plural(running, 'job')} running: their results will be written to {queue.store.location} only")
    text = "".join(line + "\n" for line in lines)
    count = lines.index(ARCHIVE_MARKER) if archive else len(lines)
    summary = f"exported {plural(count, 'job')}" + (
        f" and {plural(len(lines) - count - 1, 'archived job')}" if archive else ""
    )
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        typer.echo(f"{summary} from {queue.store.location}", err=True)
        return
    try:
        replace_file(output, text.encode("utf-8"), mode=0o600)
    except OSError as error:
        raise StoreIOError(f"{output}: cannot write: {error.strerror or error}") from None
    typer.echo(f"{summary} from {queue.store.location} to {output}")


@app.command("import")
def import_jobs(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="An export (retryq export), or - for stdin.", show_default=False)
    ],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Add the jobs of an export to the queue: all of them or, on a conflict, none.

    A job whose id the queue already holds is skipped, so importing twice adds nothing the
    second time. An open job for a client and date that already has an open job in the queue
    refuses the whole import (exit 1).

    \b
    Example:
        retryq import queue.jsonl --dry-run
        retryq --queue .retry-queue.json export --archive --output queue.jsonl
        retryq --queue postgresql://retryq@db/jobs import queue.jsonl
    """
    from ..stores.transfer import load, parse

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StoreIOError(f"{file}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    # Lines end at "\n" only: a job's text may hold U+2028 or U+0085, which splitlines() would cut at.
    exported = parse(text.split("\n"), "stdin" if file == "-" else file)
    queue = open_queue(ctx)
    warn_invalid(queue)
    done = load(queue.store, exported, dry_run=dry_run)
    archive_ignored = bool(exported.archived) and not done.archived and not queue.config.archive
    if as_json:
        echo_json(
            {
                "dryRun": dry_run,
                "added": list(done.added),
                "alreadyThere": len(exported.jobs) - len(done.added),
                "archived": list(done.archived),
                "archivedAlreadyThere": 0 if archive_ignored else len(exported.archived) - len(done.archived),
            }
        )
        return
    if archive_ignored:
        warn(f"{plural(len(exported.archived), 'archived job')} not imported: this queue keeps no archive")
    verb = "would import" if dry_run else "imported"
    line = f"{verb} {plural(len(done.added), 'job')} into {queue.store.location}"
    if skipped := len(exported.jobs) - len(done.added):
        line += f", {skipped} already there"
    if exported.archived and not archive_ignored:
        line += f"; {plural(len(done.archived), 'archived job')}"
        if kept := len(exported.archived) - len(done.archived):
            line += f", {kept} already archived"
    typer.echo(line)

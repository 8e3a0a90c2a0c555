"""A BOAMP-style fetcher, and the workflow retryq re-runs.

It pages through the notices published on DATE, compares what arrived with ``total_count``,
saves them, and hands the comparison to retryq: when notices are missing, a retry of the same
client and date is scheduled (and, inside a retry run, the chain goes on without a duplicate).
Each page request is retried in-process on timeouts, connection errors and 429/5xx; when those
quick retries run out, the whole fetch is deferred to the queue instead::

    python examples/boamp_fetcher.py balthazar 2025-12-19 --api http://127.0.0.1:43817

Exit codes follow retryq's protocol: 0 when complete or tolerably incomplete (a retry is
planned either way), 3 when critically incomplete, 75 when the API could not be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from retryq import RetryQueue, defer, is_recoverable, retry
from retryq.record.inconsistency import FetchStatus

RECORDS_PATH = "/api/explore/v2.1/catalog/datasets/boamp/records"
PAGE = 100
EX_TEMPFAIL = 75

Fetch = Callable[[str, str, int], dict[str, object]]


def fetch_page(api: str, date: str, offset: int) -> dict[str, object]:
    query = urllib.parse.urlencode({"where": f'dateparution="{date}"', "limit": PAGE, "offset": offset})
    with urllib.request.urlopen(f"{api}{RECORDS_PATH}?{query}", timeout=30) as response:  # noqa: S310 - the operator's URL
        return json.loads(response.read())  # type: ignore[no-any-return]


def fetch_all(fetch: Fetch, api: str, date: str) -> tuple[int, list[dict[str, object]]]:
    """Every notice of the day, page by page; the total the API announced."""
    notices: list[dict[str, object]] = []
    offset = 0
    while True:
        page = fetch(api, date, offset)
        total = int(page["total_count"])  # type: ignore[call-overload]
        results = page["results"]
        assert isinstance(results, list)
        notices.extend(results)
        offset += PAGE
        if not results or offset >= total:
            return total, notices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch a day of BOAMP notices for a client.")
    parser.add_argument("client")
    parser.add_argument("date")
    parser.add_argument("--api", default=os.environ.get("BOAMP_API_URL", "https://boamp-datadila.opendatasoft.com"))
    parser.add_argument("--retry-delay", default=os.environ.get("BOAMP_RETRY_DELAY", "60"), help="minutes")
    parser.add_argument("--out", default=os.environ.get("BOAMP_OUT", "data"), help="where notices are saved")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # shows retryq's retry lines

    attempt = os.environ.get("RETRYQ_ATTEMPT")
    retrying = f" (retry, attempt {attempt})" if attempt else ""
    print(f"fetching BOAMP notices of {args.date} for {args.client}{retrying}")
    queue = RetryQueue()
    # A page that fails for seconds is asked again here; a source down for longer goes to the queue.
    fetch: Fetch = retry(
        retry_if=is_recoverable,
        initial_delay=float(os.environ.get("BOAMP_HTTP_RETRY_DELAY", "1")),
        on_exhausted=defer(queue, args.client, args.date, args.retry_delay),
    )(fetch_page)
    try:
        total, notices = fetch_all(fetch, args.api, args.date)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        print(f"the API could not be reached ({error}); the fetch is deferred to the retry queue", file=sys.stderr)
        return EX_TEMPFAIL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Saving the whole day again is harmless: retries must be idempotent.
    (out / f"{args.client}-{args.date}.json").write_text(json.dumps(notices, ensure_ascii=False))
    print(f"total_count={total}, fetched={len(notices)}")

    report = queue.report_fetch(args.client, args.date, total=total, fetched=len(notices), delay=args.retry_delay)
    found = report.assessment
    if found.status is FetchStatus.OK:
        print(f"complete: {found.fetched} of {found.total} notices")
        return 0
    kind = "tolerated" if found.status is FetchStatus.DEGRADED else "critical"
    print(f"inconsistency ({kind}): missing={found.missing}, total={found.total}, ratio={found.ratio:.2%}")
    if report.retry is not None:
        job, outcome = report.retry.job, report.retry.outcome
        print(f"retry planned in {report.delay_minutes} minutes for {args.date} (job {job.id[:8]}, {outcome})")
    return 3 if found.status is FetchStatus.ERROR else 0


if __name__ == "__main__":
    sys.exit(main())

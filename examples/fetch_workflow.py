"""A stand-in for a real fetch workflow: prints what it would fetch and succeeds.

retryq runs it as ``python examples/fetch_workflow.py CLIENT DATE``; the job is also in the
environment (RETRYQ_CLIENT, RETRYQ_DATE, RETRYQ_ATTEMPT, RETRYQ_JOB_ID).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    client, date = sys.argv[1], sys.argv[2]
    attempt = os.environ.get("RETRYQ_ATTEMPT", "1")
    print(f"fetching tenders for {client} on {date} (attempt {attempt})")
    print("fetched 650 of 650 records")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An FTP import as a retryq workflow: the day's CSV files may not be there at 04:00.

Run hourly by retryq (5 attempts, 04:00 to 08:00). Each attempt looks in the inbox (where the
FTP download lands); no file yet exits 75, which asks retryq for the next attempt. Files found
are imported, then moved to ``done/``, so a file is never imported twice, whatever happens to
later attempts::

    python examples/ftp_import.py assurance 2025-12-22 --inbox inbox --done done
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

EX_TEMPFAIL = 75


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import the day's CSV files, if they have arrived.")
    parser.add_argument("client")
    parser.add_argument("date")
    parser.add_argument("--inbox", default=os.environ.get("IMPORT_INBOX", "inbox"))
    parser.add_argument("--done", default=os.environ.get("IMPORT_DONE", "done"))
    args = parser.parse_args(argv)

    attempt = os.environ.get("RETRYQ_ATTEMPT", "1")
    limit = os.environ.get("RETRYQ_MAX_ATTEMPTS", "?")
    print(f"attempt {attempt}/{limit}: looking for {args.client} files of {args.date} in {args.inbox}")
    files = sorted(Path(args.inbox).glob("*.csv"))
    if not files:
        print("no file on the server yet")
        return EX_TEMPFAIL
    done = Path(args.done)
    done.mkdir(parents=True, exist_ok=True)
    for path in files:
        rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
        print(f"imported {path.name}: {rows} rows")
        # Moved only once imported: a crash before this line imports it again next hour, never after.
        shutil.move(str(path), done / path.name)
    print(f"import finished at attempt {attempt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

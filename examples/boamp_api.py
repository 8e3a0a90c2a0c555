"""A local stand-in for the BOAMP open-data API, for the demo and the tests.

It answers like the real records endpoint (Opendatasoft "explore" API v2.1)::

    GET /api/explore/v2.1/catalog/datasets/boamp/records?where=dateparution="2025-12-19"&limit=100&offset=0
    {"total_count": 650, "results": [{"idweb": "25-100000", "objet": "...", ...}, ...]}

The first ``--flaky-passes`` reads of a date (a read starts at offset 0) leave out the last
``--drop`` notices while ``total_count`` still announces them all, as the real API did while its
index caught up; later reads are complete. Run it and read the port from its first line::

    python examples/boamp_api.py --port 0
    listening on http://127.0.0.1:43817
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RECORDS_PATH = "/api/explore/v2.1/catalog/datasets/boamp/records"


class BoampState:
    """Notices per date, and how many reads of each date have started."""

    def __init__(self, total: int, drop: int, flaky_passes: int) -> None:
        self.total = total
        self.drop = drop
        self.flaky_passes = flaky_passes
        self.reads: dict[str, int] = {}
        self.lock = threading.Lock()

    def page(self, date: str, offset: int, limit: int) -> dict[str, object]:
        with self.lock:
            if offset == 0:
                self.reads[date] = self.reads.get(date, 0) + 1
            flaky = self.reads.get(date, 1) <= self.flaky_passes
        available = self.total - (self.drop if flaky else 0)
        stop = min(offset + limit, available)
        results = [_notice(date, number) for number in range(offset, stop)]
        return {"total_count": self.total, "results": results}


def _notice(date: str, number: int) -> dict[str, object]:
    return {
        "idweb": f"{date[2:4]}-{100000 + number}",
        "objet": f"Marché public n°{number + 1}",
        "dateparution": date,
        "nomacheteur": "Acheteur de démonstration",
    }


def make_handler(state: BoampState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != RECORDS_PATH:
                self._send(404, {"error": "not found"})
                return
            query = parse_qs(url.query)
            match = re.search(r"(\d{4}-\d{2}-\d{2})", query.get("where", [""])[0])
            if match is None:
                self._send(400, {"error": 'where=dateparution="YYYY-MM-DD" is required'})
                return
            try:
                limit = min(int(query.get("limit", ["100"])[0]), 100)
                offset = int(query.get("offset", ["0"])[0])
            except ValueError:
                self._send(400, {"error": "limit and offset must be numbers"})
                return
            self._send(200, state.page(match.group(1), offset, limit))

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # the demo's output is retryq's, not the access log

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--total", type=int, default=650)
    parser.add_argument("--drop", type=int, default=3)
    parser.add_argument("--flaky-passes", type=int, default=1)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(BoampState(args.total, args.drop, args.flaky_passes))
    )
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])

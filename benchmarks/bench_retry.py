"""What retryq's retry forms cost a call that succeeds, beside tenacity's equivalents in the same run.

Each case pairs a retryq form with the tenacity code a user would write for the same thing,
both with the same policy (3 attempts, exponential wait of 1 s doubling up to 60 s):

- a decorated function: ``@retry()`` / ``@tenacity.retry(...)``, decorated once as in real code;
- a block, loop built per call: ``for attempt in retrying():`` / ``for attempt in
  tenacity.Retrying(...):`` written inside the function, as most code does;
- a block, loop reused: both loops built once, at module level, and iterated on each call;
- a function called through a context: ``RetryContext().call(f)`` / ``tenacity.Retrying(...)(f)``,
  built per call and reused;
- an ``async def`` function, decorated (a coroutine that never suspends is driven with
  ``send(None)``, so no event loop is timed).

Each run times a batch of calls of the plain function, then of both sides, in alternating order
(plain, A, B; then plain, B, A), so that a neighbour's burst or a CPU frequency change weighs on
both sides alike. A side's overhead in a run is its time per call minus the plain call's in the
same run; the table gives the medians over all runs, and the min / median / max of the time per
call. Target: retryq's overhead at most half of tenacity's. tenacity is needed only here:
``pip install tenacity`` (``make bench`` installs it). ``--json PATH`` saves the results for the
table of docs/performance.md; ``--rounds N`` sets the runs per case.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from _common import Goal, Group, ReadmeRow, Report, Row, Stats, arguments, versions

from retryq import __version__
from retryq.inprocess.forms import RetryContext, retry, retrying

RUNS = 21  # runs per case, each a batch of the plain call and of both sides
BATCH_SECONDS = 0.05  # each batch lasts about this long


def calibrate(stmt: Callable[[], object]) -> int:
    """How many calls make one batch of about BATCH_SECONDS."""
    number = 1
    while True:
        elapsed = batch(stmt, number) * number
        if elapsed >= BATCH_SECONDS / 4:
            return max(1, round(number * BATCH_SECONDS / elapsed))
        number *= 4


def batch(stmt: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        stmt()
    return (time.perf_counter() - start) / number


def drive(factory: Callable[[], Coroutine[Any, Any, object]]) -> Callable[[], object]:
    """A sync callable that runs a coroutine which never suspends to its end."""

    def run() -> object:
        coroutine = factory()
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value
        coroutine.close()
        raise RuntimeError("the coroutine suspended: it cannot be timed without an event loop")

    return run


def trivial(x: int = 1) -> int:
    return x + 1


async def trivial_async(x: int = 1) -> int:
    return x + 1


Case = tuple[str, Callable[[], object], Callable[[], object], Callable[[], object]]


def cases(tenacity: Any) -> list[Case]:
    def policy() -> dict[str, Any]:
        return {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_exponential(multiplier=1, max=60)}

    ours = retry()(trivial)
    theirs = tenacity.retry(**policy())(trivial)
    ours_async = retry()(trivial_async)
    theirs_async = tenacity.retry(**policy())(trivial_async)
    loop = retrying()
    their_loop = tenacity.Retrying(**policy())
    context = RetryContext()

    def block_plain() -> int:
        return trivial()

    def block_ours_per_call() -> int:
        for attempt in retrying():
            with attempt:
                result = trivial()
        return result

    def block_theirs_per_call() -> int:
        for attempt in tenacity.Retrying(**policy()):
            with attempt:
                result = trivial()
        return result

    def block_ours_reused() -> int:
        for attempt in loop:
            with attempt:
                result = trivial()
        return result

    def block_theirs_reused() -> int:
        for attempt in their_loop:
            with attempt:
                result = trivial()
        return result

    def call_ours_per_call() -> int:
        return RetryContext().call(trivial)

    def call_theirs_per_call() -> object:
        return tenacity.Retrying(**policy())(trivial)

    def call_ours_reused() -> int:
        return context.call(trivial)

    def call_theirs_reused() -> object:
        return their_loop(trivial)

    return [
        ("@retry on a function", trivial, ours, theirs),
        ("block, retrying() / Retrying() built per call", block_plain, block_ours_per_call, block_theirs_per_call),
        ("block, loop built once and reused", block_plain, block_ours_reused, block_theirs_reused),
        ("RetryContext().call(f) / Retrying()(f), built per call", trivial, call_ours_per_call, call_theirs_per_call),
        ("ctx.call(f) / r(f), context built once and reused", trivial, call_ours_reused, call_theirs_reused),
        ("@retry on an async def", drive(trivial_async), drive(ours_async), drive(theirs_async)),
    ]


def measure(
    plain: Callable[[], object], ours: Callable[[], object], theirs: Callable[[], object], runs: int
) -> dict[str, list[float]]:
    """Interleaved runs of the three: seconds per call of the plain function, and each side's overhead, per run."""
    stmts = {"plain": plain, "ours": ours, "theirs": theirs}
    numbers = {name: calibrate(stmt) for name, stmt in stmts.items()}
    times: dict[str, list[float]] = {name: [] for name in stmts}
    for run in range(runs):
        # A, B then B, A: whichever side runs second in a pair, the other does in the next.
        for name in ("plain", "ours", "theirs") if run % 2 == 0 else ("plain", "theirs", "ours"):
            times[name].append(batch(stmts[name], numbers[name]))
    over = {
        side: [spent - base for spent, base in zip(times[side], times["plain"], strict=True)]
        for side in ("ours", "theirs")
    }
    return {"plain": times["plain"], "ours": over["ours"], "theirs": over["theirs"]}


def group_of(name: str, label: str, found: dict[str, list[float]], runs: int) -> Group:
    """One case as a table: the plain call, then each side's overhead (ns); retryq's ÷ tenacity's, run by run."""
    ns = {key: [value * 1e9 for value in values] for key, values in found.items()}
    ratios = [ours / theirs for ours, theirs in zip(ns["ours"], ns["theirs"], strict=True)]
    rows = [
        Row("plain", "the plain call", Stats.of(ns["plain"]), samples=ns["plain"]),
        Row(
            "retryq",
            "retryq's overhead per call",
            Stats.of(ns["ours"]),
            {"tenacity": Stats.of(ratios)},
            goal=Goal("ratio:tenacity", 0.5, "≤ 0.5 × tenacity"),
            samples=ns["ours"],
        ),
        Row("tenacity", "tenacity's overhead per call", Stats.of(ns["theirs"]), samples=ns["theirs"]),
    ]
    method = (
        f"{runs} interleaved runs, each a batch of about {BATCH_SECONDS * 1000:.0f} ms per side (plain, A, B; then "
        "plain, B, A); a side's overhead is its time per call minus the plain call's in the same run"
    )
    return Group(name, label, "ns", rows, method)


def main() -> None:
    options = arguments(__doc__, RUNS)
    try:
        import tenacity
    except ImportError:
        print("tenacity is not installed: pip install tenacity (it is needed only for this comparison)")
        sys.exit(0)

    report = Report(
        "retry",
        f"Overhead of a successful call: retryq {__version__} beside tenacity {tenacity_version()}",
        versions=versions("tenacity"),
        notes=[
            f"Python {platform.python_version()} ({platform.python_implementation()}); tenacity's side: "
            "stop_after_attempt(3), wait_exponential(multiplier=1, max=60); retryq's defaults."
        ],
    )
    report.header()
    names = ["decorated", "block-per-call", "block-reused", "call-per-call", "call-reused", "async"]
    for name, (label, plain, ours, theirs) in zip(names, cases(tenacity), strict=True):
        group = group_of(name, label, measure(plain, ours, theirs, options.rounds), options.rounds)
        report.groups.append(group)
        report.print_group(group)
    report.readme = [
        ReadmeRow(
            "`@retry`: overhead of a call that succeeds",
            "decorated",
            "retryq",
            "tenacity",
            "`@tenacity.retry`, the same policy",
        ),
        ReadmeRow(
            "`for attempt in retrying():`, built per call",
            "block-per-call",
            "retryq",
            "tenacity",
            "`for attempt in tenacity.Retrying(...)`, built per call",
        ),
        ReadmeRow("`@retry` on an `async def`", "async", "retryq", "tenacity", "`@tenacity.retry` on an `async def`"),
    ]
    report.finish(options.json)


def tenacity_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenacity")
    except PackageNotFoundError:
        return "(version unknown)"


if __name__ == "__main__":
    main()

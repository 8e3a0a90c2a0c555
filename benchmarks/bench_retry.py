"""What ``@retry`` costs a call that succeeds, beside tenacity's ``@retry`` in the same run.

A trivial function is timed plain, under retryq's ``@retry()`` and under
``@tenacity.retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=1, max=60))``;
the overhead is each one's time per call minus the plain call's. Each figure is the best of
several timeit runs: the fastest run is the one least disturbed by the rest of the machine.

The block form (``for attempt in retrying(): with attempt: ...``) and ``async def`` functions
are measured the same way. A coroutine that never suspends is driven with ``send(None)``, so
no event loop is timed.

Target: retryq's overhead at most half of tenacity's. tenacity is needed only here:
``pip install tenacity``.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable, Coroutine
from typing import Any

from _common import header, table

from retryq import __version__
from retryq.inprocess import retry, retrying

RUNS = 7


def per_call(stmt: Callable[[], object]) -> tuple[float, float]:
    """Best and median seconds per call of ``stmt`` over RUNS timeit runs."""
    timer = timeit.Timer("stmt()", globals={"stmt": stmt})
    number, _ = timer.autorange()  # enough calls for one run to last at least 0.2 s
    runs = [elapsed / number for elapsed in timer.repeat(repeat=RUNS, number=number)]
    return min(runs), statistics.median(runs)


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


def main() -> None:
    try:
        import tenacity
    except ImportError:
        print("tenacity is not installed: pip install tenacity (it is needed only for this comparison)")
        sys.exit(0)

    policy: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(3),
        "wait": tenacity.wait_exponential(multiplier=1, max=60),
    }
    ours = retry()(trivial)
    theirs = tenacity.retry(**policy)(trivial)
    ours_async = retry()(trivial_async)
    theirs_async = tenacity.retry(**policy)(trivial_async)
    loop = retrying()

    def plain_block() -> int:
        return trivial()

    def ours_block() -> int:
        for attempt in loop:
            with attempt:
                result = trivial()
        return result

    def theirs_block() -> int:
        for attempt in tenacity.Retrying(**policy):
            with attempt:
                result = trivial()
        return result

    groups: list[tuple[str, Callable[[], object], Callable[[], object], Callable[[], object]]] = [
        ("decorated function", trivial, ours, theirs),
        ("block (retrying() / tenacity.Retrying)", plain_block, ours_block, theirs_block),
        ("async def, decorated", drive(trivial_async), drive(ours_async), drive(theirs_async)),
    ]

    header(f"Overhead of a successful call: retryq {__version__} beside tenacity {tenacity_version()}")
    print(f"best of {RUNS} timeit runs of at least 0.2 s each; median in brackets\n")
    rows = []
    for label, plain, retryq_call, tenacity_call in groups:
        base, base_median = per_call(plain)
        ours_time, ours_median = per_call(retryq_call)
        theirs_time, theirs_median = per_call(tenacity_call)
        ours_over = (ours_time - base) * 1e9
        theirs_over = (theirs_time - base) * 1e9
        rows.append(
            [
                label,
                f"{base * 1e9:.0f} ({base_median * 1e9:.0f})",
                f"{ours_over:.0f} ({(ours_median - base_median) * 1e9:.0f})",
                f"{theirs_over:.0f} ({(theirs_median - base_median) * 1e9:.0f})",
                f"{ours_over / theirs_over:.3f}",
                "met" if ours_over <= theirs_over / 2 else "NOT met",
            ]
        )
    table(
        [
            "call",
            "plain ns/call",
            "retryq overhead ns",
            "tenacity overhead ns",
            "retryq / tenacity",
            "target ≤ 0.5",
        ],
        rows,
    )


def tenacity_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenacity")
    except PackageNotFoundError:
        return "(version unknown)"


if __name__ == "__main__":
    main()

"""Start-up: wall time of retryq's commands, and of importing retryq, in A/B pairs with their floors.

- Commands (`retryq schedule` on a temp queue, `report`, `list` on 100 jobs, `--help`) beside
  the floor `python -c "import typer, pydantic, filelock, dateutil"`: the dependencies a command
  loads, imported and not used. `python -c pass` (the interpreter alone) and a bare typer
  application with one command are paired with the floor too: they show what no Python command
  avoids, and what typer costs to parse a command line.
- `python -c "import retryq"`, and the line a fetcher writes, `from retryq import RetryQueue`,
  beside `python -c "import pydantic, filelock"`.

Every ratio is taken within one pair (the two runs follow each other, in alternating order).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from _common import (
    Goal,
    Group,
    ReadmeRow,
    Report,
    arguments,
    clean_env,
    finished_job,
    paired,
    rows_from,
    timed,
    versions,
    write_queue,
)

ROUNDS = 21
BIN = Path(sys.executable).parent
FLOOR = "import typer, pydantic, filelock, dateutil"
IMPORT_FLOOR = "import pydantic, filelock"

BARE_TYPER = """
import typer
app = typer.Typer()
@app.command()
def schedule(client: str, date: str, delay: str = "60") -> None:
    print(client, date, delay)
app()
"""


def command(argv: list[str], cwd: str, env: dict[str, str]) -> Callable[[], float]:
    """A callable that runs ``argv`` once and returns its wall time in seconds."""

    def once() -> float:
        def run() -> None:
            done = subprocess.run(
                argv, check=False, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode().strip()}")

        return timed(run)

    return once


def numbered(make_argv: Callable[[int], list[str]], cwd: str, env: dict[str, str]) -> Callable[[], float]:
    """Like :func:`command`, each run with its own number (a new client each time, so that each schedule adds a job)."""
    counter = iter(range(10**9))

    def once() -> float:
        return command(make_argv(next(counter)), cwd, env)()

    return once


def main() -> None:
    args = arguments(__doc__, ROUNDS)
    report = Report(
        "startup",
        "Start-up: retryq's commands and import beside their floors",
        versions=versions("typer", "pydantic", "filelock", "python-dateutil"),
    )
    report.header()
    env = clean_env()
    python = sys.executable
    retryq = str(BIN / "retryq")
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "bare_typer.py").write_text(textwrap.dedent(BARE_TYPER))
        listed = Path(directory) / "listed.json"
        write_queue(listed, [finished_job(n) for n in range(100)])
        commands = {
            "floor": command([python, "-c", FLOOR], directory, env),
            "python -c pass": command([python, "-c", "pass"], directory, env),
            "bare typer": command([python, "bare_typer.py", "balthazar", "2025-12-19"], directory, env),
            "schedule": numbered(lambda n: [retryq, "schedule", f"c{n}", "2025-12-19", "60"], directory, env),
            "report": numbered(
                lambda n: [retryq, "report", f"r{n}", "2025-12-19", "--total", "650", "--fetched", "647"],
                directory,
                env,
            ),
            "list": command([retryq, "list", "--queue-file", str(listed)], directory, env),
            "--help": command([retryq, "--help"], directory, env),
        }
        runs = paired("floor", commands, args.rounds, label="commands")
        imports = {
            "import floor": command([python, "-c", IMPORT_FLOOR], directory, env),
            "import retryq": command([python, "-c", "import retryq"], directory, env),
            "from retryq import RetryQueue": command([python, "-c", "from retryq import RetryQueue"], directory, env),
        }
        import_runs = paired("import floor", imports, args.rounds, label="imports")

    target = Goal("ratio:floor", 1.3, "≤ 1.3 × floor")
    report.groups.append(
        Group(
            "commands",
            "Commands beside the import floor",
            "ms",
            rows_from(
                runs,
                {
                    "floor": f'floor: python -c "{FLOOR}"',
                    "python -c pass": "python -c pass (the interpreter alone)",
                    "bare typer": "a bare typer app with one command",
                    "schedule": "retryq schedule CLIENT 2025-12-19 60 (temp queue)",
                    "report": "retryq report CLIENT 2025-12-19 --total 650 --fetched 647",
                    "list": "retryq list (100 jobs)",
                    "--help": "retryq --help",
                },
                goals=dict.fromkeys(("schedule", "report", "list", "--help"), target),
                scale=1000,
            ),
            f"{args.rounds} rounds; each round pairs every command with its own run of the floor "
            "(order alternating); ratios are per pair, then min / median / max of the ratios",
            notes=[
                "The floor imports the dependencies a command loads and uses none of them; the schedule and "
                "report queues grow by one job per run (to a few dozen)."
            ],
        )
    )
    report.groups.append(
        Group(
            "imports",
            "Importing retryq beside importing pydantic and filelock",
            "ms",
            rows_from(
                import_runs,
                {
                    "import floor": f'floor: python -c "{IMPORT_FLOOR}"',
                    "import retryq": 'python -c "import retryq"',
                    "from retryq import RetryQueue": 'python -c "from retryq import RetryQueue"',
                },
                goals={"import retryq": Goal("ratio:import floor", 1.2, "≤ 1.2 × floor")},
                scale=1000,
            ),
            f"{args.rounds} rounds of A/B pairs, as above",
            notes=[
                "`import retryq` loads its names on first use: the fetcher's line, `from retryq import "
                "RetryQueue`, is the one that pays for the store, the models and pydantic."
            ],
        )
    )
    for group in report.groups:
        report.print_group(group)
    floor = f'`python -c "{FLOOR}"`'
    report.readme = [
        ReadmeRow("`retryq schedule` (temp queue)", "commands", "schedule", "floor", floor),
        ReadmeRow("`retryq report … --total 650 --fetched 647`", "commands", "report", "floor", floor),
        ReadmeRow("`retryq list` (100 jobs)", "commands", "list", "floor", floor),
        ReadmeRow("`retryq --help`", "commands", "--help", "floor", floor),
        ReadmeRow("a bare typer app with one command", "commands", "bare typer", "floor", floor),
        ReadmeRow("`python -c pass`", "commands", "python -c pass", "floor", floor),
        ReadmeRow(
            '`python -c "import retryq"`', "imports", "import retryq", "import floor", f'`python -c "{IMPORT_FLOOR}"`'
        ),
        ReadmeRow(
            '`python -c "from retryq import RetryQueue"`',
            "imports",
            "from retryq import RetryQueue",
            "import floor",
            f'`python -c "{IMPORT_FLOOR}"`',
        ),
    ]
    report.finish(args.json)


if __name__ == "__main__":
    main()

"""Wall time of `retryq schedule` beside the time Python takes to import retryq's own dependencies.

The floor is `python -c "import typer, pydantic, filelock, dateutil.parser"`. A bare typer
application with one command is shown too: it is what typer itself costs to parse a command
line, which the floor does not include.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import best_median, header, table, timed

RUNS = 21
BIN = Path(sys.executable).parent


def measure(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    def once() -> float:
        return timed(lambda: subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True))

    once()  # warm the page cache
    return best_median(once, RUNS)


def main() -> None:
    header("Start-up: `retryq schedule` ÷ importing its dependencies")
    # Python caches compiled modules by default; a machine that disables it pays compilation on every run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYQ_") and k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as directory:
        bare = Path(directory) / "bare_typer.py"
        bare.write_text(
            textwrap.dedent(
                """
                import typer
                app = typer.Typer()
                @app.command()
                def schedule(client: str, date: str, delay: str = "60") -> None:
                    print(client, date, delay)
                app()
                """
            )
        )
        counter = iter(range(10**6))
        floor = measure([sys.executable, "-c", "import typer, pydantic, filelock, dateutil.parser"], directory, env)
        typer_only = measure([sys.executable, str(bare), "balthazar", "2025-12-19"], directory, env)

        def schedule() -> float:
            argv = [str(BIN / "retryq"), "schedule", f"c{next(counter)}", "2025-12-19", "60"]
            return timed(lambda: subprocess.run(argv, cwd=directory, env=env, stdout=subprocess.DEVNULL, check=True))

        schedule()
        retryq = best_median(schedule, RUNS)
        (Path(directory) / "retryq.toml").write_text('[workflow]\ncommand = ["true", "{client}", "{date}"]\n')
        schedule()
        configured = best_median(schedule, RUNS)
    rows = [
        ["python -c 'import typer, pydantic, filelock, dateutil.parser' (floor)", f"{floor * 1000:.0f}", "1.00"],
        ["a bare typer app with one command", f"{typer_only * 1000:.0f}", f"{typer_only / floor:.2f}"],
        ["retryq schedule balthazar 2025-12-19 60", f"{retryq * 1000:.0f}", f"{retryq / floor:.2f}"],
        ["the same, with a retryq.toml to validate", f"{configured * 1000:.0f}", f"{configured / floor:.2f}"],
    ]
    table(["command", "median ms", "÷ floor"], rows)
    print(f"\n(median of {RUNS} runs each; target: retryq schedule ≤ 1.0 × the floor)")


if __name__ == "__main__":
    main()

"""The code blocks of the README and of docs/: which run, how, and how their shown output is matched.

A small collector of our own rather than Sybil or pytest-examples: the examples are mostly shell
sessions of the installed ``retryq`` command, whose output carries times and job ids that change at
every run. pytest-examples runs Python only; Sybil would need a parser for shell sessions and the same
matching of varying output written for it anyway. What is here is plain Markdown fences, read the way
MkDocs reads them, and one rule per fence language:

- ``console``: a shell session. Each ``$ `` line (``\\`` continues it) runs with bash in the page's
  own directory, the installed package's ``bin/`` first on ``PATH``; the lines after it are its output
  (stdout and stderr together) and must match. A command must exit 0: an example that shows a failure
  says so itself (``retryq show nope; echo "exit $?"``).
- ``python``: run in one Python process per page (the installed package's interpreter, in the page's
  directory), so that a later block sees the names an earlier one defined.
- ``pycon``: ``>>>`` sessions, run in that same process; what each line prints must match.
- ``toml`` without a title: a configuration, which the installed ``retryq`` must load without error.
- any block with a ``title="NAME"`` (Material shows it as the block's title): the file NAME, written
  into the page's directory for the blocks after it (an executable bit if it starts with ``#!``).

Every other language is not run, and :data:`NOT_RUN` says what each is for; the tests list those
blocks, so that nothing runnable hides behind another language.

Shown output is matched by pattern, never skipped: a UTC time (``2025-12-19T10:00:02.311Z``) matches
any such time, a duration (``59m59s``, ``1h``) any duration, two spaces or more (aligned columns) two
spaces or more; a job id (16 hex digits) or its 8-digit short form matches any, and the same shown id
must be the same real id wherever it appears again on the page (commands included: ``retryq show
7ff34e21`` runs with the id the earlier output really had); ``…`` matches any text within a line, and
a line of ``…`` alone any number of lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The fence languages that run, and how (see the module's docstring).
RUN = ("console", "python", "pycon", "toml")

#: The fence languages that are not run, each with what it holds; any other language is an error.
NOT_RUN = {
    "sh": "a command that changes the machine (pip install, crontab -e, systemctl, make): shown, not run",
    "text": "output or a log excerpt shown for reading, or a diagram",
    "crontab": "a crontab, included from crontab.example",
    "ini": "a systemd unit, included from retryq.service.example",
    "batch": "a Windows command file, included from schtasks.example.cmd",
    "json": "a file's content shown for reading",
    "yaml": "a configuration of another tool",
    "sql": "statements for a database's administrator, run by tests/integration/test_postgres_errors.py",
}

#: Pages generated from the code and checked against it by their own tests (their blocks are --help texts).
GENERATED = ("docs/cli.md", "docs/configuration.md")

_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})[ ]*(?P<info>[^`]*)$")
_TITLE = re.compile(r"""title=(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)')""")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    page: str  # relative to the repository, with forward slashes
    line: int  # of the opening fence, from 1
    language: str
    title: str | None
    text: str

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.title is not None or self.language in RUN


def pages(root: Path = ROOT) -> list[Path]:
    """The README and every page under docs/, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced code blocks of one Markdown file, with their indentation (list items) removed."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(root).as_posix()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, info = len(opening["indent"]), opening["fence"], opening["info"].strip()
        closing = re.compile(rf"^[ ]*{re.escape(fence[0])}{{{len(fence)},}}[ ]*$")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            body.append(lines[end][indent:] if lines[end][:indent].strip() == "" else lines[end])
            end += 1
        language = info.split()[0] if info else ""
        title = _TITLE.search(info)
        found.append(
            Block(
                page=page,
                line=index + 1,
                language=language,
                title=(title["double"] if title["double"] is not None else title["single"]) if title else None,
                text="\n".join(body) + "\n" if body else "",
            )
        )
        index = end + 1
    return found


def all_blocks(root: Path = ROOT) -> list[Block]:
    return [block for path in pages(root) for block in blocks(path, root)]


# -- shell sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    line: int  # in the page
    command: str
    output: str


def _session(block: Block, prompt: str, continued: Callable[[str, str], bool]) -> list[tuple[int, list[str], str]]:
    """A session's entries: each line given at ``prompt`` (with the lines that ``continued(last, next)``
    says carry it on), where it stands in the page, and the output shown after it."""
    found: list[tuple[int, list[str], str]] = []
    lines = block.text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith(prompt):
            raise ValueError(f"{block.page}:{block.line + 1 + index}: output before any `{prompt}` line")
        start, given = index, [lines[index]]
        index += 1
        while index < len(lines) and continued(given[-1], lines[index]):
            given.append(lines[index])
            index += 1
        output: list[str] = []
        while index < len(lines) and not lines[index].startswith(prompt):
            output.append(lines[index])
            index += 1
        found.append((block.line + 1 + start, given, "\n".join(output)))
    return found


def commands(block: Block) -> list[Command]:
    """The ``$`` commands of a ``console`` block (a line ending in ``\\`` goes on), each with its output."""
    sessions = _session(block, "$ ", lambda last, _: last.endswith("\\"))
    return [
        Command(line, "\n".join(part.removesuffix("\\") for part in [given[0][2:], *given[1:]]), output)
        for line, given, output in sessions
    ]


# -- matching shown output ---------------------------------------------------------------------------

_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"
_DURATION = r"\d+[dhms](?:\d+[hms])*"
_TOKEN = re.compile(
    rf"(?P<time>{_TIME})"
    r"|(?P<id>(?<![0-9A-Za-z])[0-9a-f]{16}(?![0-9A-Za-z]))"
    r"|(?P<short>(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{8}(?![0-9A-Za-z]))"
    rf"|(?P<duration>(?<![\w.:/-]){_DURATION}(?![\w.:/-]))"
    r"|(?P<spaces>[ ]{2,})"
    r"|(?P<any>…)"
)


class Mismatch(AssertionError):
    """What was shown and what ran differ."""


def _line_pattern(line: str, names: Mapping[str, str], groups: dict[str, str]) -> str:
    parts: list[str] = []
    position = 0
    for token in _TOKEN.finditer(line):
        parts.append(re.escape(line[position : token.start()]))
        position = token.end()
        value = token.group()
        if token["time"]:
            parts.append(_TIME)
        elif token["duration"]:
            parts.append(_DURATION)
        elif token["spaces"]:
            parts.append("[ ]{2,}")  # columns aligned on values of another width
        elif token["any"]:
            parts.append(".*?")
        else:
            known = names.get(value)
            if known is not None:
                parts.append(re.escape(known))
            elif value in groups.values():  # the same shown id twice in one output: the same real id
                group = next(name for name, shown in groups.items() if shown == value)
                parts.append(f"(?P={group})")
            else:
                group = f"g{len(groups)}"
                groups[group] = value
                parts.append(f"(?P<{group}>[0-9a-f]{{{len(value)}}})")
    parts.append(re.escape(line[position:]))
    return "".join(parts)


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def match(shown: str, actual: str, names: MutableMapping[str, str]) -> None:
    """Check ``actual`` against the ``shown`` output; learn which real id each shown id stands for.

    ``names`` maps shown ids (16 and 8 hex digits) to real ones, for the whole page; it is updated
    only when the output matches.
    """
    groups: dict[str, str] = {}
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "…" else _line_pattern(line, names, groups) + "\n"
        for line in _normalize(shown).splitlines()
    )
    # Each line's pattern ends with a newline (so that `…` lines may match none); compare line-ended texts.
    text = _normalize(actual) + "\n" if actual.strip() else ""
    found = re.fullmatch(pattern, text)
    if found is None:
        raise Mismatch(f"shown:\n{_normalize(shown)}\n\nactual:\n{_normalize(actual)}")
    for group, shown_id in groups.items():
        real = found.group(group)
        names[shown_id] = real
        if len(shown_id) == 16:
            names.setdefault(shown_id[:8], real[:8])


def substitute(text: str, names: Mapping[str, str]) -> str:
    """``text`` (a command, a Python block) with each shown id replaced by the real one learnt so far."""
    return _TOKEN.sub(
        lambda token: names.get(token.group(), token.group()) if token["id"] or token["short"] else token.group(),
        text,
    )


def uncollected(all_found: list[Block]) -> Iterator[Block]:
    """The blocks that are not run, outside the generated pages."""
    return (block for block in all_found if not block.runs and block.page not in GENERATED)


# -- the Python side: one process per page -----------------------------------------------------------

#: Run with the installed interpreter (``python -c``): reads one JSON request a line, answers one a line
#: on the descriptor it was given; the blocks' own output (and their children's) goes to stderr.
DRIVER = r"""
import contextlib, io, json, os, sys, traceback
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
namespace = {"__name__": "__main__"}
for request in sys.stdin:
    request = json.loads(request)
    printed = io.StringIO()
    answer = {"ok": True, "output": ""}
    try:
        with contextlib.redirect_stdout(printed):
            code = compile(request["code"], request["name"], request["mode"])
            exec(code, namespace)
    except BaseException as error:
        answer = {"ok": False, "error": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
                  "last": traceback.format_exception_only(type(error), error)[-1].strip()}
    answer["output"] = printed.getvalue()
    answers.write(json.dumps(answer) + "\n")
    answers.flush()
"""


@dataclass(frozen=True)
class Example:
    """One ``>>>`` line of a ``pycon`` block (with its ``...`` continuations) and the output shown after it."""

    line: int
    source: str
    output: str


def pycon_examples(block: Block) -> list[Example]:
    """The ``>>>`` statements of a ``pycon`` block (with their ``...`` lines), each with its output."""
    sessions = _session(block, ">>>", lambda _, line: line.startswith("..."))
    return [Example(line, "".join(part[4:] + "\n" for part in given), output) for line, given, output in sessions]

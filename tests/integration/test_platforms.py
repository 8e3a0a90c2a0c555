"""The Windows way of stopping workflows and splitting commands, run on any system through its seams."""

from __future__ import annotations

import subprocess

import pytest

from retryq.running import platform
from retryq.settings.commandline import split_windows


class Recorder:
    """Stands in for subprocess.run: records each command, answers as told."""

    def __init__(self, alive: set[int]) -> None:
        self.alive = alive
        self.commands: list[list[str]] = []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(argv)
        if argv[0] == "taskkill" and "/F" in argv:
            self.alive.discard(int(argv[-1]))
        if argv[0] == "tasklist":
            pid = int(argv[2].split()[-1])
            listed = f'"python.exe","{pid}","Console","1","10,000 K"' if pid in self.alive else "INFO: No tasks."
            return subprocess.CompletedProcess(argv, 0, listed, "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_a_forced_stop_on_windows_really_forces(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group ignores the polite taskkill: after the grace, taskkill /F ends the whole tree."""
    recorder = Recorder(alive={4242})
    monkeypatch.setattr(platform, "PLATFORM", platform._Windows(run=recorder))
    assert platform.stop_group(4242, 0.0, sleep=lambda seconds: None)
    assert recorder.commands[0] == ["taskkill", "/T", "/PID", "4242"]
    assert ["taskkill", "/T", "/F", "/PID", "4242"] in recorder.commands
    assert recorder.commands[-1][0] == "tasklist"  # and it checked that the tree is gone


def test_windows_liveness_reads_tasklist() -> None:
    recorder = Recorder(alive={10})
    windows = platform._Windows(run=recorder)
    assert (windows.pid_alive(10), windows.pid_alive(100), windows.pid_alive(0)) == (True, False, False)
    assert windows.popen_options()["creationflags"] == getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        (r"C:\app\fetch.py {client}", [r"C:\app\fetch.py", "{client}"]),
        (
            r'"C:\Program Files\Python\python.exe" C:\app\fetch.py {date}',
            [r"C:\Program Files\Python\python.exe", r"C:\app\fetch.py", "{date}"],
        ),
        (r"C:\app\.venv\Scripts\python.exe -m fetch", [r"C:\app\.venv\Scripts\python.exe", "-m", "fetch"]),
    ],
)
def test_windows_paths_keep_their_backslashes(text: str, argv: list[str]) -> None:
    assert split_windows(text) == argv


def test_posix_groups_refuse_groups_that_are_not_a_workflows() -> None:
    posix = platform._Posix()
    assert not posix.terminate_group(0)
    assert not posix.kill_group(1)
    assert not posix.kill_group(-1)

"""The settings' declaration: each key resolves from the file, its variable and its option as declared,
inherits as declared, and refuses what it does not take with one line naming the file, the table and the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from retryq.record.backoff import Backoff
from retryq.record.errors import ConfigError, ExitCode
from retryq.record.inconsistency import InconsistencyThresholds
from retryq.settings import declaration as declared
from retryq.settings.config import Config, Schedule, WorkflowSettings, load_config
from retryq.settings.declaration import BACKOFF_KEYS, PER_WORKFLOW, REPORT, SCHEDULE, SETTINGS, TOP_LEVEL
from retryq.settings.reference import toml as describe
from retryq.settings.setting import Scope, Setting

#: Where a setting is written to take effect, and the TOML line that sets it.
TABLE = {
    Scope.TOP: "",
    Scope.SHARED: "",
    Scope.WORKFLOW: "[workflow]\n",
    Scope.REPORT: "[report]\n",
    Scope.BACKOFF: "[backoff]\n",
    Scope.BREAKER: "[breaker]\n",
    # A schedule needs its cron (given by the line of each key but cron itself) and a workflow to run.
    Scope.SCHEDULE: '[workflows.sync]\n[schedules.nightly]\ncron = "0 3 * * *"\n',
}


def table(setting: Setting[Any]) -> str:
    """The lines before ``setting``'s own: the table it is written in (and what that table needs besides)."""
    if setting is declared.SCHEDULE[0]:
        return "[schedules.nightly]\n"
    return TABLE[setting.scope]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retryq.toml"
    path.write_text(text)
    return path


def resolved(config: Config, setting: Setting[Any]) -> Any:
    """The value ``setting`` resolved into."""
    if setting.scope is Scope.TOP:
        return getattr(config, setting.name)
    if setting.scope is Scope.REPORT:
        value = getattr(config.thresholds, setting.name)
        return config.thresholds.policy if setting is declared.report_delay else value
    if setting.scope is Scope.BACKOFF:
        return repr(config.workflow().backoff)
    if setting.scope is Scope.BREAKER:
        return getattr(config.workflow().breaker, setting.name, None)
    if setting.scope is Scope.SCHEDULE:
        return getattr(config.schedules["nightly"], setting.name)
    return comparable(getattr(config.workflow(), setting.name))


def expected(setting: Setting[Any], value: object, base: Path | None = None) -> Any:
    """What ``value`` (as a file gives it) resolves into; from a file in ``base``, relative to it."""
    if setting.scope is Scope.BACKOFF:
        return repr(declared.backoff.kind.parse({setting.key: value}))
    parsed = setting.kind.parse(value)
    if setting.merged:  # what a workflow gets of the top level's value alone
        parsed = setting.kind.merge(parsed, None)
    return comparable(parsed if base is None else setting.kind.anchor(parsed, base))


def comparable(value: Any) -> Any:
    return repr(value) if isinstance(value, Backoff) else value


def ids(settings: tuple[Setting[Any], ...]) -> list[str]:
    return [f"{setting.scope.name.lower()}.{setting.key}" for setting in settings]


@pytest.mark.parametrize("setting", SETTINGS, ids=ids(SETTINGS))
def test_every_setting_has_help_and_an_example_that_resolves_from_the_file(
    tmp_path: Path, setting: Setting[Any]
) -> None:
    assert setting.help
    assert setting.example is not None
    assert setting.default is not None or setting.unset, "say what leaving it out means"
    path = write(tmp_path, f"{table(setting)}{setting.key} = {describe(setting.example)}\n")
    assert resolved(load_config(path, env={}), setting) == expected(setting, setting.example, tmp_path)


@pytest.mark.parametrize("setting", SETTINGS, ids=ids(SETTINGS))
def test_every_default_is_the_declared_one(tmp_path: Path, setting: Setting[Any]) -> None:
    if setting is declared.SCHEDULE[0]:  # the one key without a default: a schedule without it is refused
        with pytest.raises(ConfigError, match=r"schedules\.nightly: `cron` is missing"):
            load_config(write(tmp_path, "[schedules.nightly]\n"), env={})
        return
    config = load_config(write(tmp_path, "" if setting.scope is not Scope.SCHEDULE else TABLE[setting.scope]), env={})
    if setting.scope is Scope.BACKOFF:
        assert resolved(config, setting) == "constant()"  # the job's own delay, every time
    elif setting.scope is Scope.BREAKER:
        assert resolved(config, setting) is None  # no breaker unless one is asked for
    elif setting.default is None:
        assert resolved(config, setting) is None
    else:
        assert resolved(config, setting) == expected(setting, setting.default)


def test_the_dataclasses_hold_every_setting_and_default_as_declared() -> None:
    """Config and WorkflowSettings are public API: their attributes stay, their defaults come from the declaration."""
    not_settings = {"source", "workflows", "thresholds", "running_workflow", "name", "command_origin", "schedules"}
    config = {field.name: field for field in dataclasses.fields(Config)}
    workflow = {field.name: field for field in dataclasses.fields(WorkflowSettings)}
    assert set(config) - not_settings == {setting.name for setting in TOP_LEVEL}
    assert set(workflow) - not_settings == {setting.name for setting in PER_WORKFLOW}
    assert {field.name for field in dataclasses.fields(InconsistencyThresholds)} == {s.name for s in REPORT}
    assert {field.name for field in dataclasses.fields(Schedule)} - not_settings == {s.name for s in SCHEDULE}
    built = Config(), WorkflowSettings("x")
    for setting, instance in [(s, built[0]) for s in TOP_LEVEL] + [(s, built[1]) for s in PER_WORKFLOW]:
        default = None if setting.default is None else expected(setting, setting.default)
        assert comparable(getattr(instance, setting.name)) == default, setting.key


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.env], ids=ids(tuple(s for s in SETTINGS if s.env)))
def test_a_variable_overrides_the_file(tmp_path: Path, setting: Setting[Any]) -> None:
    example = setting.example if isinstance(setting.example, str) else " ".join(setting.example)  # type: ignore[arg-type]
    path = write(tmp_path, f"{table(setting)}{setting.key} = {describe(setting.default or 'from-the-file')}\n")
    for variable in setting.env:
        config = load_config(path, env={variable: example})
        assert resolved(config, setting) == setting.kind.parse(example), variable


def test_queue_precedence_default_file_variable_option(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), env={}).queue == ".retry-queue.json"
    path = write(tmp_path, 'queue = "jobs.json"\n')
    assert load_config(path, env={}).queue == str(tmp_path / "jobs.json")
    from_env = load_config(path, env={"RETRYQ_QUEUE": "other.json"})
    assert from_env.queue == "other.json"
    assert from_env.with_overrides(queue="cli.json").queue == "cli.json"


def test_a_workflow_inherits_the_top_level_then_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'timeout = "2m"\nenv = { A = "top", B = "top" }\n'
        '[workflows.ftp]\ncommand = ["x"]\nmax_attempts = 9\nenv = { B = "own" }\nconcurrency = 2\n',
    )
    config = load_config(path, env={})
    ftp, default = config.workflow("ftp"), config.workflow()
    assert (ftp.timeout.total_seconds(), ftp.max_attempts, ftp.concurrency) == (120, 9, 2)
    assert (default.timeout.total_seconds(), default.max_attempts, default.concurrency) == (120, 3, None)
    assert ftp.env == {"A": "top", "B": "own"}
    assert config.concurrency == 1  # a workflow's own cap is not the overall one


def test_schema_is_an_alias_of_namespace(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'schema = "billing"\n'), env={})
    assert (config.namespace, config.schema) == ("billing", "billing")
    with pytest.raises(ConfigError, match="give `namespace` or `schema`, not both"):
        load_config(write(tmp_path, 'namespace = "a"\nschema = "b"\n'), env={})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("max_attemps = 5\n", "max_attemps: unknown key in the top level; did you mean `max_attempts`?"),
        ("[workflow]\ntimeot = 5\n", "workflow.timeot: unknown key in [workflow]; did you mean `timeout`?"),
        (
            '[workflows.ftp]\ncommand = ["x"]\nkeep_day = 3\n',
            "workflows.ftp.keep_day: unknown key in [workflows.ftp]; did you mean `keep_days`?",
        ),
        ("[report]\nmax_mising = 1\n", "report.max_mising: unknown key in [report]; did you mean `max_missing`?"),
        (
            '[backoff]\nstrategi = "linear"\n',
            "backoff.strategi: unknown key in the backoff table; did you mean `strategy`?",
        ),
        ("keep_days = { faild = 3 }\n", "keep_days: unknown status 'faild' (known: completed, failed, cancelled)"),
        ("colour = 1\n", "colour: unknown key in the top level\n"),
        (
            'command = ["x"]\n',
            "command: not a key of the top level: `command` is set in [workflow] or [workflows.NAME]",
        ),
        (
            "[workflow]\nlock_timeout = 5\n",
            "workflow.lock_timeout: not a key of [workflow]: `lock_timeout` is set in the",
        ),
        ("max_missing = 1\n", "max_missing: not a key of the top level: `max_missing` is set in [report]"),
    ],
)
def test_an_unknown_key_is_one_line_naming_the_file_and_the_table(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, toml), env={})
    assert f"{caught.value}\n".startswith(f"{tmp_path / 'retryq.toml'}: {message}")
    assert caught.value.exit_code is ExitCode.CONFIG


#: Values each kind refuses, beyond its bounds or of the wrong type.
BAD = {
    "queue": [5, ""],
    "namespace": ["-x", "a b", "x" * 101, 3],
    "lock_timeout": ["2d", "soon", -1],
    "concurrency": [0, 257, "many", 1.5, True],
    "global_concurrency": ["maybe", 1],
    "lease_grace": ["2d"],
    "due_window": ["2d", []],
    "archive": ["sometimes"],
    "metrics_file": [3, ""],
    "dashboard": [False],
    "dashboard_mode": ["0999", 0o1777, "rw", True],
    "dashboard_tails": ["sometimes", 0],
    "on_failure_timeout": ["0s", "2d"],
    "display_tz": ["Mars/Olympus", 2],
    "command": [[], "", 12, ["x", "{clientId}"]],
    "timeout": [0, "inf", "0s"],
    "kill_grace": ["2h"],
    "max_attempts": [0, 101, "3x"],
    "no_retry_exit_codes": [[256], [-1], 2],
    "backoff": [{"strategy": "random"}, {"factor": 0.5}, 5],
    "keep_days": [-1, 36_501, {"failed": -1}, "week"],
    "on_failure": ["notify.sh", [1]],
    "env": [{"A": 1}, "A=1"],
    "max_missing": [-1, "x"],
    "max_ratio": [2, -0.1, "half"],
    "delay": [-5, "31d", {"ok": 5}],
    "strategy": ["random"],
    "initial": ["soon"],
    "increment": [-1],
    "factor": [0.5, "double"],
    "max": ["x"],
    "jitter": [[]],
    "breaker": ["yes", {"failures": 0}, {"probe": "1m"}, 5],
    "on_incident": ["page.sh", [1]],
    "failures": [0, "many"],
    "window": [0, "2d"],
    "probe_every": ["0s", "never"],
    "max_open": [0, "31d"],
    "max_wait": ["31d", "soon", -1, True],
    "priority": [101, -101, "high", 1.5, True],
    "cron": ["61 * * * *", "* * * *", "0 3 * * * *", "@daily", "", 3, "0 3 * * MON#9"],
    "workflow": ["nope", "-x", 3],
    "client": ["-x", "a b", "x" * 65, 2],
    "tz": ["Mars/Olympus", "", 1],
    "catch_up": ["all", "", True],
    "grace": ["31d", "later"],
}


@pytest.mark.parametrize("setting", SETTINGS, ids=ids(SETTINGS))
def test_every_bad_value_is_one_line_naming_the_key_and_exit_78(tmp_path: Path, setting: Setting[Any]) -> None:
    assert BAD[setting.key], f"give {setting.key} some values it refuses"
    for value in BAD[setting.key]:
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, f"{table(setting)}{setting.key} = {describe(value)}\n"), env={})
        text = str(caught.value)
        where = {
            Scope.WORKFLOW: "workflow.",
            Scope.REPORT: "report.",
            Scope.BACKOFF: "backoff.",
            Scope.BREAKER: "breaker.",
            Scope.SCHEDULE: "schedules.nightly.",
        }.get(setting.scope, "")
        assert text.startswith(f"{tmp_path / 'retryq.toml'}: {where}{setting.key}"), (value, text)
        assert "\n" not in text
        assert not {"True", "False"} & set(text.replace(",", " ").split()), text  # TOML's true, not Python's
        assert caught.value.exit_code is ExitCode.CONFIG


def test_a_bad_variable_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^RETRYQ_COMMAND: cannot split the command: No closing quotation$"):
        load_config(write(tmp_path, ""), env={"RETRYQ_COMMAND": "x 'unclosed"})


def test_every_key_is_declared_once_per_table() -> None:
    for table in (
        TOP_LEVEL + tuple(s for s in PER_WORKFLOW if s.scope is Scope.SHARED),
        PER_WORKFLOW,
        REPORT,
        SCHEDULE,
    ):
        names = [name for setting in table for name in (setting.key, *setting.aliases)]
        assert len(names) == len(set(names))
    assert len({setting.key for setting in BACKOFF_KEYS}) == len(BACKOFF_KEYS)


# -- the breaker: [breaker], breaker = { … }, breaker = false ------------------------------------------------


def test_a_breaker_table_takes_each_keys_default_and_a_workflow_changes_it_key_by_key(tmp_path: Path) -> None:
    from retryq.record.breakerstate import BreakerSettings

    path = write(
        tmp_path,
        '[breaker]\nwindow = "5m"\n'
        '[workflows.ftp]\ncommand = ["x"]\nbreaker = { failures = 2 }\n'
        '[workflows.off]\ncommand = ["y"]\nbreaker = false\n'
        '[workflows.plain]\ncommand = ["z"]\n',
    )
    config = load_config(path, env={})
    minutes = {n: __import__("datetime").timedelta(minutes=n) for n in (5, 10, 15)}
    default = BreakerSettings(5, minutes[5], minutes[15], minutes[15] * 48)
    assert config.workflow().breaker == default
    assert config.workflow("plain").breaker == default
    assert config.workflow("ftp").breaker == BreakerSettings(2, minutes[5], minutes[15], minutes[15] * 48)
    assert config.workflow("off").breaker is None
    own = load_config(write(tmp_path, '[workflows.ftp]\ncommand = ["x"]\nbreaker = { failures = 2 }\n'), env={})
    assert own.workflow().breaker is None  # none by default: only where asked for
    assert own.workflow("ftp").breaker == BreakerSettings(2, minutes[10], minutes[15], minutes[15] * 48)
    assert load_config(write(tmp_path, "breaker = true\n"), env={}).workflow().breaker == BreakerSettings(
        5, minutes[10], minutes[15], minutes[15] * 48
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[breaker]\nfailures = 0\n", "breaker.failures: must be a whole number from 1 to 10000, not 0"),
        ("[breaker]\nwindow = 0\n", "breaker.window: must be more than 0 seconds, not 0"),
        ("[breaker]\nfailurs = 3\n", "breaker.failurs: unknown key in the breaker table; did you mean `failures`?"),
        ('[workflows.a]\ncommand = ["x"]\nbreaker = { probe = "1m" }\n', "workflows.a.breaker.probe: unknown key"),
        ('breaker = "yes"\n', "breaker: expected a table, not 'yes'"),
    ],
)
def test_a_bad_breaker_is_one_line_and_exit_78(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), env={})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == ExitCode.CONFIG

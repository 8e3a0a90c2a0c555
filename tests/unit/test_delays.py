"""How long a retry waits: the forms of `[report] delay`, and decide_delay() as a pure function."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retryq.record.backoff import constant, exponential, jitter, linear
from retryq.record.errors import ConfigError, ExitCode, InvalidInput
from retryq.record.inconsistency import (
    MAX_DELAY_MINUTES,
    Assessment,
    Decision,
    DelayBand,
    DelayPolicy,
    FetchStatus,
    InconsistencyThresholds,
    assess,
    decide_delay,
    parse_delay_policy,
)
from retryq.settings.config import load_config

DEGRADED = assess(650, 647)  # 3 missing, 0.46 %
ERROR = assess(650, 600)  # 50 missing, 7.69 %
BY_STATUS = DelayPolicy(by_status={FetchStatus.DEGRADED: 60, FetchStatus.ERROR: 20})
BANDS = DelayPolicy(bands=(DelayBand(0.005, 60), DelayBand(0.05, 30), DelayBand(None, 15)))


# -- picking the delay for a verdict ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "found", "decision"),
    [
        (DelayPolicy(), DEGRADED, Decision(60, "")),  # today's form: one delay, nothing to explain
        (DelayPolicy(45), ERROR, Decision(45, "")),
        (BY_STATUS, DEGRADED, Decision(60, "delay for DEGRADED")),
        (BY_STATUS, ERROR, Decision(20, "delay for ERROR")),
        # A status left out of the table waits the default delay, and the reason says so.
        (DelayPolicy(by_status={FetchStatus.ERROR: 20}), DEGRADED, Decision(60, "default delay for DEGRADED")),
        (DelayPolicy(45, by_status={FetchStatus.DEGRADED: 90}), ERROR, Decision(45, "default delay for ERROR")),
        (BANDS, DEGRADED, Decision(60, "delay for missing up to 0.5%")),
        (BANDS, assess(650, 630), Decision(30, "delay for missing up to 5%")),  # 3.08 %, an ERROR
        (BANDS, ERROR, Decision(15, "delay for missing over 5%")),
        (DelayPolicy(bands=(DelayBand(None, 15),)), ERROR, Decision(15, "")),  # one open band is one delay
    ],
)
def test_the_policy_picks_the_delay_of_the_verdict(policy: DelayPolicy, found: Assessment, decision: Decision) -> None:
    assert decide_delay(found, policy) == decision


@pytest.mark.parametrize(
    ("total", "fetched", "minutes"),
    [
        (1000, 995, 60),  # 0.5 % exactly: a bound belongs to its band ("up to")
        (1000, 994, 30),  # 0.6 %
        (100, 95, 30),  # 5 % exactly
        (100, 94, 15),  # 6 %
        (1, 0, 15),  # everything missing
    ],
)
def test_band_bounds_are_inclusive(total: int, fetched: int, minutes: int) -> None:
    assert decide_delay(assess(total, fetched), BANDS).minutes == minutes


def test_bands_ignore_the_status() -> None:
    # 4 missing of 1000 is DEGRADED (0.4 %), 4 of 650 is ERROR (0.62 %): the ratio alone picks the band.
    assert assess(1000, 996).status is FetchStatus.DEGRADED
    assert assess(650, 646).status is FetchStatus.ERROR
    assert [decide_delay(assess(t, f), BANDS).minutes for t, f in [(1000, 996), (650, 646)]] == [60, 30]


@pytest.mark.parametrize(("total", "fetched"), [(650, 650), (0, 0), (650, 652)])
def test_a_fetch_that_needs_no_retry_has_no_delay(total: int, fetched: int) -> None:
    with pytest.raises(InvalidInput, match="nothing is missing"):
        decide_delay(assess(total, fetched), DelayPolicy())


@pytest.mark.parametrize("attempt", [0, -1, True, 1.0, "2"])
def test_the_attempt_counts_from_1(attempt: Any) -> None:
    with pytest.raises(InvalidInput, match="attempt counts the retries of a chain from 1"):
        decide_delay(ERROR, DelayPolicy(), attempt)


# -- the attempt: follow-ups spaced by the workflow's backoff -------------------------------------------


def test_the_first_retry_of_a_chain_waits_the_policy_delay_whatever_the_backoff() -> None:
    assert decide_delay(ERROR, BY_STATUS, 1, exponential(factor=3)) == Decision(20, "delay for ERROR")


def test_the_default_fixed_backoff_keeps_the_delay_of_every_follow_up() -> None:
    assert [decide_delay(ERROR, BY_STATUS, attempt, constant()) for attempt in (2, 3, 10)] == [
        Decision(20, "delay for ERROR")
    ] * 3
    assert decide_delay(ERROR, BY_STATUS, 5) == Decision(20, "delay for ERROR")  # no backoff given


def test_an_exponential_backoff_doubles_the_delay_of_the_verdict_after_each_attempt() -> None:
    decisions = [decide_delay(ERROR, BY_STATUS, attempt, exponential(factor=2)) for attempt in (1, 2, 3, 4)]
    assert decisions == [
        Decision(20, "delay for ERROR"),
        Decision(20, "delay for ERROR"),  # the follow-up asked during attempt 1 waits what an exit 75 would
        Decision(40, "backoff after attempt 2 on the 20-minute delay for ERROR"),
        Decision(80, "backoff after attempt 3 on the 20-minute delay for ERROR"),
    ]
    assert decide_delay(DEGRADED, DelayPolicy(), 3, exponential()) == Decision(
        120, "backoff after attempt 2 on the 60-minute delay"
    )
    assert decide_delay(ERROR, BANDS, 3, linear(increment=600)).reason == (
        "backoff after attempt 2 on the 15-minute delay for missing over 5%"
    )


def test_the_backoff_is_capped_at_30_days_and_rounded_to_the_minute() -> None:
    assert decide_delay(ERROR, BY_STATUS, 100, exponential(factor=10)).minutes == MAX_DELAY_MINUTES == 43_200
    assert decide_delay(ERROR, BY_STATUS, 3, exponential(factor=1.51)).minutes == 30  # 20 × 1.51 = 30.2


def test_a_backoff_with_its_own_initial_delay_ignores_the_verdict() -> None:
    # As for retries after an exit code: an explicit `initial` is the workflow's choice, over any job's delay.
    assert decide_delay(ERROR, BY_STATUS, 2, constant(3600)) == Decision(
        60, "backoff after attempt 1 on its own initial delay"
    )
    assert (
        decide_delay(ERROR, BY_STATUS, 3, exponential(900)).reason == "backoff after attempt 2 on its own initial delay"
    )


def test_jitter_comes_from_the_backoff_and_is_random_only_through_it() -> None:
    spread = constant() + jitter(300, rng=random.Random(7))
    minutes = [decide_delay(ERROR, BY_STATUS, 2, spread).minutes for _ in range(50)]
    assert set(minutes) <= set(range(20, 26))
    assert len(set(minutes)) > 1
    again = constant() + jitter(300, rng=random.Random(7))
    assert [decide_delay(ERROR, BY_STATUS, 2, again).minutes for _ in range(50)] == minutes


# -- properties --------------------------------------------------------------------------------------

minutes_st = st.integers(min_value=0, max_value=MAX_DELAY_MINUTES)


@st.composite
def band_policies(draw: st.DrawFn) -> DelayPolicy:
    bounds = sorted(draw(st.sets(st.floats(min_value=1e-6, max_value=0.999, allow_nan=False), max_size=5)))
    delays = draw(st.lists(minutes_st, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    return DelayPolicy(
        bands=tuple(DelayBand(bound, minutes) for bound, minutes in zip([*bounds, None], delays, strict=True))
    )


policies = st.one_of(
    st.builds(DelayPolicy, minutes_st),
    st.builds(
        DelayPolicy,
        minutes_st,
        st.dictionaries(st.sampled_from([FetchStatus.DEGRADED, FetchStatus.ERROR]), minutes_st),
    ),
    band_policies(),
)


@st.composite
def incomplete_fetches(draw: st.DrawFn) -> Assessment:
    total = draw(st.integers(min_value=1, max_value=10**6))
    fetched = draw(st.integers(min_value=0, max_value=total - 1))
    thresholds = InconsistencyThresholds(
        draw(st.integers(min_value=0, max_value=50)), draw(st.floats(min_value=0, max_value=1))
    )
    return assess(total, fetched, thresholds)


@given(incomplete_fetches(), band_policies())
def test_the_first_band_that_holds_the_ratio_wins(found: Assessment, policy: DelayPolicy) -> None:
    expected = next(band for band in policy.bands if band.up_to is None or found.ratio <= band.up_to)
    assert decide_delay(found, policy).minutes == expected.minutes


@given(incomplete_fetches(), policies, st.integers(min_value=1, max_value=200))
def test_every_decision_is_whole_minutes_within_30_days(found: Assessment, policy: DelayPolicy, attempt: int) -> None:
    for backoff in (None, constant(), exponential(factor=2), linear(increment=90)):
        decision = decide_delay(found, policy, attempt, backoff)
        assert isinstance(decision.minutes, int)
        assert 0 <= decision.minutes <= MAX_DELAY_MINUTES
        assert decision == decide_delay(found, policy, attempt, backoff)  # no clock, no state: the same again


@given(incomplete_fetches(), policies, st.integers(min_value=1, max_value=60))
def test_an_exponential_backoff_never_shortens_a_later_follow_up(
    found: Assessment, policy: DelayPolicy, attempt: int
) -> None:
    def minutes(n: int) -> int:
        return decide_delay(found, policy, n, exponential(factor=1.5)).minutes

    assert minutes(attempt) <= minutes(attempt + 1)
    assert minutes(1) == decide_delay(found, policy).minutes


toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-(10**12), max_value=10**12),
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.sampled_from(["60m", "1h", "90s", "0", "degraded", "error", "up_to", "delay"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["degraded", "error", "up_to", "delay", "ok", "x"]), children, max_size=3),
    ),
    max_leaves=10,
)


@given(toml_values)
def test_any_value_is_a_policy_or_one_line_of_refusal(value: Any) -> None:
    refusal = None
    try:
        parse_delay_policy(value)
    except InvalidInput as error:
        refusal = str(error)
    assert refusal is None or (refusal and "\n" not in refusal)


# -- the forms of [report] delay in retryq.toml ------------------------------------------------------


def report_delay(tmp_path: Path, line: str) -> DelayPolicy:
    path = tmp_path / "retryq.toml"
    path.write_text(f"[report]\n{line}\n")
    return load_config(path, env={}).thresholds.policy


@pytest.mark.parametrize(
    ("line", "policy"),
    [
        ("", DelayPolicy(60)),
        ("delay = 45", DelayPolicy(45)),  # minutes, as before
        ("delay = 60.0", DelayPolicy(60)),
        ('delay = "1h"', DelayPolicy(60)),
        ('delay = "90m"', DelayPolicy(90)),
        ("delay = 0", DelayPolicy(0)),
        ('delay = "30d"', DelayPolicy(MAX_DELAY_MINUTES)),
        ('delay = { degraded = "60m", error = "20m" }', BY_STATUS),
        ("delay = { error = 20 }", DelayPolicy(by_status={FetchStatus.ERROR: 20})),
        ('delay = [ { up_to = 0.005, delay = "60m" }, { up_to = 0.05, delay = "30m" }, { delay = "15m" } ]', BANDS),
        ('delay = [ { delay = "15m" } ]', DelayPolicy(bands=(DelayBand(None, 15),))),
    ],
)
def test_the_forms_of_the_delay(tmp_path: Path, line: str, policy: DelayPolicy) -> None:
    assert report_delay(tmp_path, line) == policy


def test_the_bands_read_well_as_an_array_of_tables(tmp_path: Path) -> None:
    path = tmp_path / "retryq.toml"
    path.write_text(
        '[[report.delay]]\nup_to = 0.005\ndelay = "60m"\n\n'
        '[[report.delay]]\nup_to = 0.05\ndelay = "30m"\n\n'
        '[[report.delay]]\ndelay = "15m"\n'
    )
    assert load_config(path, env={}).thresholds.policy == BANDS


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("delay = -5", "duration must not be negative: -5"),
        ('delay = "soon"', "not a duration: 'soon' (examples: 60, 90m, 2h, 1h30m)"),
        ('delay = "90s"', "delay '90s' is not a whole number of minutes"),
        ("delay = 1.5", "delay 1.5 is not a whole number of minutes"),
        ('delay = "31d"', "delay '31d' is longer than the 30-day maximum"),
        ("delay = true", 'expected minutes or a duration such as "60m", not True'),
        ("delay = {}", "the table is empty: give degraded, error or both"),
        ('delay = { eror = "20m" }', "unknown status 'eror' in the table (degraded, error)"),
        ('delay = { ok = "5m" }', "unknown status 'ok' in the table (degraded, error)"),
        ('delay = { ERROR = "5m" }', "unknown status 'ERROR' in the table (degraded, error)"),
        ('delay = { error = "45d" }', "error: delay '45d' is longer than the 30-day maximum"),
        ("delay = { degraded = [1] }", 'degraded: expected minutes or a duration such as "60m", not [1]'),
        ("delay = []", "no band: give at least one, the last without up_to"),
        ("delay = [ 5, { delay = 1 } ]", 'band 1: a band is a table, { up_to = 0.05, delay = "30m" }, not 5'),
        ("delay = [ { up_to = 0.1 }, { delay = 1 } ]", "band 1: delay is missing"),
        ("delay = [ { upto = 0.1, delay = 1 }, { delay = 1 } ]", "band 1: unknown key 'upto' (up_to, delay)"),
        ('delay = [ { up_to = 0.1, delay = "2s" }, { delay = 1 } ]', "band 1: delay '2s' is not a whole number"),
        ("delay = [ { delay = 5 }, { delay = 1 } ]", "band 1: only the last band may leave out up_to"),
        (
            "delay = [ { up_to = 0.05, delay = 5 } ]",
            "the last band must leave out up_to, to take every ratio above 0.05",
        ),
        (
            "delay = [ { up_to = 0.05, delay = 5 }, { up_to = 0.005, delay = 1 }, { delay = 1 } ]",
            "band 2: up_to 0.005 must be more than the band before (0.05)",
        ),
        (
            "delay = [ { up_to = 0.05, delay = 5 }, { up_to = 0.05, delay = 1 }, { delay = 1 } ]",
            "band 2: up_to 0.05 must be more than the band before (0.05)",
        ),
        (
            "delay = [ { up_to = 5, delay = 5 }, { delay = 1 } ]",
            "band 1: up_to is a ratio of the total, more than 0 and less than 1 (0.05 is 5%), not 5",
        ),
        ("delay = [ { up_to = 0, delay = 5 }, { delay = 1 } ]", "band 1: up_to is a ratio of the total"),
        ('delay = [ { up_to = "5%", delay = 5 }, { delay = 1 } ]', "band 1: up_to is a ratio of the total"),
    ],
)
def test_nonsense_is_one_line_and_exit_78(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        report_delay(tmp_path, line)
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'retryq.toml'}: report.delay: {message}")
    assert "\n" not in text
    assert caught.value.exit_code is ExitCode.CONFIG


# -- the library's own forms ------------------------------------------------------------------------------


def test_thresholds_take_minutes_a_duration_or_a_policy() -> None:
    assert InconsistencyThresholds(delay=45).policy == DelayPolicy(45)
    assert InconsistencyThresholds(delay="2h").policy == DelayPolicy(120)
    assert InconsistencyThresholds(delay=BANDS).policy is BANDS
    with pytest.raises(InvalidInput, match="duration must not be negative"):
        InconsistencyThresholds(delay=-1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DelayPolicy(-1), "delay must be whole minutes from 0 to 30 days, not -1"),
        (lambda: DelayPolicy(MAX_DELAY_MINUTES + 1), "delay must be whole minutes from 0 to 30 days"),
        (lambda: DelayPolicy(by_status={FetchStatus.OK: 5}), "no delay for OK: only DEGRADED and ERROR"),
        (lambda: DelayPolicy(by_status={FetchStatus.ERROR: 1.5}), "delay for ERROR must be whole minutes"),
        (
            lambda: DelayPolicy(by_status={FetchStatus.ERROR: 5}, bands=(DelayBand(None, 5),)),
            "a delay per status or per band of missing ratio, not both",
        ),
        (lambda: DelayPolicy(bands=(DelayBand(None, -5),)), "band 1: delay must be whole minutes"),
    ],
)
def test_a_policy_checks_itself(make: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()


def test_a_policy_passes_through_parsing_as_it_is() -> None:
    assert parse_delay_policy(BY_STATUS) is BY_STATUS

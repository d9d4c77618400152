"""TimerConfig: RFC 3261 Table 4 (Appendix A) and RFC 6026 Table 1."""

from __future__ import annotations

import dataclasses
import math

import pytest

from centrex.transaction.timers import Timer, TimerConfig


def test_defaults_are_the_rfc_values() -> None:
    config = TimerConfig()
    assert (config.t1, config.t2, config.t4) == (0.5, 4.0, 5.0)
    unreliable = {timer: config.duration(timer, reliable=False) for timer in Timer}
    assert unreliable == {
        Timer.A: 0.5,
        Timer.B: 32.0,
        Timer.C: 180.0,
        Timer.D: 32.0,
        Timer.E: 0.5,
        Timer.F: 32.0,
        Timer.G: 0.5,
        Timer.H: 32.0,
        Timer.I: 5.0,
        Timer.J: 32.0,
        Timer.K: 5.0,
        Timer.L: 32.0,
        Timer.M: 32.0,
    }


def test_reliable_transport_drops_retransmit_timers_and_zeroes_waits() -> None:
    config = TimerConfig()
    reliable = {timer: config.duration(timer, reliable=True) for timer in Timer}
    assert reliable == {
        Timer.A: None,  # 17.1.1.2
        Timer.B: 32.0,
        Timer.C: 180.0,
        Timer.D: 0.0,  # 17.1.1.2
        Timer.E: None,  # 17.1.2.2
        Timer.F: 32.0,
        Timer.G: None,  # 17.2.1
        Timer.H: 32.0,
        Timer.I: 0.0,  # 17.2.1
        Timer.J: 0.0,  # 17.2.2
        Timer.K: 0.0,  # 17.1.2.2
        Timer.L: 32.0,
        Timer.M: 32.0,
    }


def test_unset_timers_follow_t1_and_t4() -> None:
    config = TimerConfig(t1=0.1, t2=4.0, t4=2.0)
    for timer in (Timer.B, Timer.F, Timer.H, Timer.J, Timer.L, Timer.M):
        assert config.duration(timer, reliable=False) == pytest.approx(6.4)
    assert config.timer_i_for(reliable=False) == 2.0
    assert config.timer_k_for(reliable=False) == 2.0
    assert config.timer_a_for(reliable=False) == 0.1


def test_explicit_timers_override_the_derived_defaults_on_unreliable_only() -> None:
    config = TimerConfig(timer_b=10.0, timer_d=40.0, timer_j=7.0, timer_k=3.0, timer_m=9.0)
    assert config.timer_b_for(reliable=True) == 10.0
    assert config.timer_d_for(reliable=False) == 40.0
    assert config.timer_d_for(reliable=True) == 0.0
    assert config.timer_j_for(reliable=False) == 7.0
    assert config.timer_j_for(reliable=True) == 0.0
    assert config.timer_k_for(reliable=False) == 3.0
    assert config.timer_m_for(reliable=True) == 9.0


def test_backoff_doubles_and_caps_at_t2_only_when_asked() -> None:
    config = TimerConfig()
    intervals = [0.5]
    for _ in range(5):
        intervals.append(config.backoff(intervals[-1], cap_at_t2=True))
    assert intervals == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert config.backoff(4.0, cap_at_t2=False) == 8.0


def test_config_is_frozen() -> None:
    config = TimerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.t1 = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"t1": 0.0},
        {"t1": -0.5},
        {"t2": 0.0},
        {"t4": -1.0},
        {"timer_b": 0.0},
        {"timer_d": -32.0},
        {"timer_c": 0.0},
        {"timer_m": math.inf},
        {"timer_h": math.nan},
        {"t1": True},
        {"timer_f": "32"},
    ],
)
def test_timer_values_must_be_positive_numbers(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        TimerConfig(**kwargs)  # type: ignore[arg-type]


def test_t2_must_not_be_below_t1() -> None:
    with pytest.raises(ValueError, match="t2"):
        TimerConfig(t1=2.0, t2=1.0)
    assert TimerConfig(t1=2.0, t2=2.0).t2 == 2.0


def test_integer_seconds_are_accepted() -> None:
    assert TimerConfig(t1=1, t2=4, t4=5).timer_b_for(reliable=False) == 64

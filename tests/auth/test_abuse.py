"""Failure bans, the per-source rate limit and scanner detection."""

from __future__ import annotations

import pytest

from centrex.auth.abuse import Ban, FailureTracker, RateLimiter, is_scanner

from .helpers import T0

ATTACKER = "198.51.100.66"
PHONE = "192.0.2.10"


def tracker(**changes: float) -> FailureTracker:
    settings: dict[str, float] = {"threshold": 5, "window_s": 60, "ban_s": 600}
    settings.update(changes)
    return FailureTracker(
        int(settings["threshold"]), settings["window_s"], settings["ban_s"], max_sources=1000
    )


def test_source_is_banned_after_threshold_failures_within_the_window() -> None:
    t = tracker()
    newly = [t.record_failure(ATTACKER, T0 + i) for i in range(5)]
    assert newly == [False, False, False, False, True]
    assert t.is_banned(ATTACKER, T0 + 5)
    assert not t.is_banned(PHONE, T0 + 5)


def test_ban_is_reported_once() -> None:
    t = tracker()
    for i in range(5):
        t.record_failure(ATTACKER, T0 + i)
    assert [t.record_failure(ATTACKER, T0 + 10 + i) for i in range(20)] == [False] * 20


def test_failures_spread_wider_than_the_window_do_not_ban() -> None:
    t = tracker()
    assert not any(t.record_failure(ATTACKER, T0 + i * 20) for i in range(50))
    assert not t.is_banned(ATTACKER, T0 + 1000)


def test_ban_expires_after_the_ban_time() -> None:
    t = tracker()
    for i in range(5):
        t.record_failure(ATTACKER, T0 + i)
    assert t.is_banned(ATTACKER, T0 + 4 + 599)
    assert not t.is_banned(ATTACKER, T0 + 4 + 600)
    assert t.bans(T0 + 4 + 600) == []
    # After the ban it starts counting afresh.
    assert not t.record_failure(ATTACKER, T0 + 700)
    assert t.failures(ATTACKER) == 1


def test_success_forgives_earlier_failures() -> None:
    t = tracker()
    for i in range(4):
        t.record_failure(PHONE, T0 + i)
    t.record_success(PHONE)
    assert not t.record_failure(PHONE, T0 + 5)
    assert t.failures(PHONE) == 1


def test_bans_lists_the_bans_in_force_and_clear_lifts_them() -> None:
    t = tracker(threshold=1)
    t.record_failure("198.51.100.1", T0)
    t.record_failure("2001:db8::1", T0 + 1)
    assert t.bans(T0 + 2) == [
        Ban("198.51.100.1", T0, T0 + 600, 1),
        Ban("2001:db8::1", T0 + 1, T0 + 601, 1),
    ]
    assert t.clear("198.51.100.1") == 1
    assert t.clear("198.51.100.1") == 0
    assert not t.is_banned("198.51.100.1", T0 + 3)
    assert t.clear() == 1
    assert t.bans(T0 + 3) == []


def test_svcrack_style_guessing_is_banned_before_twenty_tries() -> None:
    t = FailureTracker(threshold=10, window_s=300, ban_s=3600, max_sources=1000)
    tries = 0
    now = T0
    while not t.is_banned(ATTACKER, now):
        tries += 1
        t.record_failure(ATTACKER, now)
        now += 0.01
    assert tries < 20


def test_failure_tracker_memory_is_bounded_with_100000_sources() -> None:
    t = FailureTracker(threshold=3, window_s=60, ban_s=600, max_sources=10_000)
    for i in range(100_000):
        t.record_failure(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", T0 + i * 0.001)
    assert t.tracked_sources == 10_000


def test_ban_table_memory_is_bounded_with_100000_sources() -> None:
    t = FailureTracker(threshold=1, window_s=60, ban_s=600, max_sources=10_000)
    for i in range(100_000):
        t.record_failure(f"2001:db8::{i:x}", T0)
    assert len(t.bans(T0)) == 10_000
    assert t.is_banned(f"2001:db8::{99_999:x}", T0)  # the newest bans are the ones kept


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate_per_s=10, burst=20, max_sources=100)
    assert sum(limiter.allow(ATTACKER, T0) for _ in range(100)) == 20
    assert sum(limiter.allow(ATTACKER, T0 + 1) for _ in range(100)) == 10
    assert sum(limiter.allow(ATTACKER, T0 + 1.5) for _ in range(100)) == 5


def test_rate_limited_flood_does_not_stop_another_source() -> None:
    limiter = RateLimiter(rate_per_s=20, burst=40, max_sources=1000)
    now = T0
    phone_allowed = 0
    for i in range(20_000):  # 20,000 requests in 10 s from one address
        now = T0 + i * 0.0005
        limiter.allow(ATTACKER, now)
        if i % 1000 == 0:
            phone_allowed += limiter.allow(PHONE, now)
    assert phone_allowed == 20
    assert not limiter.allow(ATTACKER, now)


def test_rate_limiter_memory_is_bounded_with_100000_sources() -> None:
    limiter = RateLimiter(rate_per_s=5, burst=10, max_sources=10_000)
    for i in range(100_000):
        assert limiter.allow(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", T0)
    assert limiter.tracked_sources == 10_000


def test_rate_limiter_bucket_refills_no_higher_than_the_burst() -> None:
    limiter = RateLimiter(rate_per_s=100, burst=3, max_sources=10)
    limiter.allow(PHONE, T0)
    assert sum(limiter.allow(PHONE, T0 + 3600) for _ in range(10)) == 3


@pytest.mark.parametrize(
    "user_agent",
    [
        "friendly-scanner",
        "Friendly-Scanner",
        "sipvicious 0.3.4",
        "sipcli/v1.8",
        "sip-scan",
        "VaxSIPUserAgent/3.1",
        "iWar",
        "sundayddr",
        "smap 0.6.0",
    ],
)
def test_known_scanner_user_agents_are_recognised(user_agent: str) -> None:
    assert is_scanner(user_agent)


@pytest.mark.parametrize(
    "user_agent",
    [None, "", "Linphone/5.2", "baresip v3.10", "Yealink SIP-T46S", "Grandstream GXP2170"],
)
def test_ordinary_phones_are_not_scanners(user_agent: str | None) -> None:
    assert not is_scanner(user_agent)


def test_extra_scanner_names_can_be_added() -> None:
    assert is_scanner("EvilDialer/1.0", extra=["evildialer"])
    assert not is_scanner("Linphone", extra=[""])


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        FailureTracker(0, 60, 600, 10)
    with pytest.raises(ValueError):
        RateLimiter(0, 10, 10)


def test_restored_bans_run_no_longer_than_the_ban_time_now_set() -> None:
    tracker = FailureTracker(threshold=3, window_s=60, ban_s=100, max_sources=10)
    bans = [Ban("192.0.2.1", 0.0, float("inf"), 3), Ban("192.0.2.2", 0.0, 1050.0, 3)]
    assert tracker.restore(bans, now=1000.0) == 2
    assert tracker.is_banned("192.0.2.1", 1099.0)
    assert not tracker.is_banned("192.0.2.1", 1100.0)
    assert tracker.is_banned("192.0.2.2", 1049.0)
    assert not tracker.is_banned("192.0.2.2", 1050.0)

"""Presence settings: read from [registrar], checked when built."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from centrex.config.settings import RegistrarSettings
from centrex.presence import PresenceSettings

from .helpers import PHONE, T0, make_table, subscribe


def test_registrar_settings_without_the_presence_keys_give_the_defaults() -> None:
    settings = PresenceSettings.from_registrar(RegistrarSettings(name="Switchboard"))
    assert settings.enabled
    assert settings.registrar_name == "Switchboard"
    assert (settings.event_available, settings.event_unavailable) == (
        "user-available",
        "user-unavailable",
    )
    assert settings.wire_form == "rfc6665"
    assert settings.notify_max_bytes == 1300
    assert settings.build_limit == 1300 - 160


def test_the_presence_keys_of_registrar_are_read_when_present() -> None:
    registrar = SimpleNamespace(
        name="Registrar",
        case_sensitive=True,
        presence_events=True,
        event_available="here",
        event_unavailable="gone",
        presence_compat="lanscape",
        notify_max_bytes=1400,
        notify_failures_before_drop=5,
        subscribe_min_expires=30,
        subscribe_default_expires=600,
        subscribe_max_expires=900,
    )
    settings = PresenceSettings.from_registrar(registrar, user_agent="Centrex")
    assert settings.wire_form == "lanscape"
    assert (settings.event_available, settings.event_unavailable) == ("here", "gone")
    assert (settings.min_expires, settings.default_expires, settings.max_expires) == (30, 600, 900)
    assert settings.notify_failures_before_drop == 5
    assert settings.case_sensitive
    assert settings.user_agent == "Centrex"


@pytest.mark.parametrize(
    "changes",
    [
        {"event_available": "user available"},
        {"event_available": "same", "event_unavailable": "Same"},
        {"event_unavailable": "presence"},
        {"compat": "other"},
        {"min_expires": 100, "default_expires": 50},
        {"notify_max_bytes": 500},
        {"notify_failures_before_drop": 0},
    ],
)
def test_inconsistent_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PresenceSettings(**changes)  # type: ignore[arg-type]


def test_the_subscriber_must_be_an_aor() -> None:
    with pytest.raises(ValueError, match="AOR"):
        make_table().handle_subscribe(subscribe(), subscriber="1244", source=PHONE, now=T0)


def test_the_user_agent_goes_into_server_and_user_agent_headers() -> None:
    table = make_table(user_agent="Centrex/0.1")
    ok, (notify,) = table.handle_subscribe(
        subscribe(), subscriber="sip:1244@example.com", source=PHONE, now=T0
    )
    assert ok.get("Server") == "Centrex/0.1"
    assert notify.request.get("User-Agent") == "Centrex/0.1"

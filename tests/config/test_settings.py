"""The settings model: defaults, validation rules and the helpers the server uses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from centrex.config import (
    ListenAddress,
    NetworkSettings,
    RegistrarSettings,
    ServerSettings,
    Settings,
    TimeoutSettings,
    User,
)


def test_defaults_are_a_working_server() -> None:
    settings = Settings()
    assert settings.server.domains == []
    assert settings.server.instance_id == ""
    assert settings.server.data_dir == "./data"
    assert settings.server.user_agent == "Centrex"
    assert settings.server.record_route is True
    assert settings.server.allow_relay is False
    assert settings.server.workers == 1
    assert settings.network.listen == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert settings.network.advertised_address == ""
    assert settings.network.tcp_idle_timeout_s == 7500  # above max_expires: see load warnings
    assert settings.network.max_connections_per_address == 32
    assert settings.network.max_buffer_bytes_per_connection == 65536
    assert settings.network.max_message_bytes == 65536
    registrar = settings.registrar
    assert (registrar.min_expires, registrar.default_expires, registrar.max_expires) == (
        60,
        3600,
        7200,
    )
    assert registrar.name == "Registrar"
    assert registrar.case_sensitive is False
    assert registrar.max_contacts == 10
    assert registrar.max_contacts_policy == "evict_oldest"
    assert registrar.store == "memory"
    assert registrar.recovery_every_registrations == 100
    assert registrar.recovery_every_seconds == 10
    assert registrar.purge_expired is True
    assert registrar.purge_interval_s == 30
    assert registrar.remove_on_connection_close is True
    assert registrar.allow_unknown_users is False
    assert settings.timeouts.model_dump() == {
        "t1_ms": 500,
        "t2_ms": 4000,
        "t4_ms": 5000,
        "transaction_s": 32,
        "ringing_s": 180,
    }
    assert settings.logging.model_dump() == {
        "level": "info",
        "format": "text",
        "file": "",
        "max_bytes": 10_000_000,
        "backup_count": 5,
        "sip_trace": False,
        "sip_trace_file": "sip-trace.log",
    }
    assert settings.admin.listen == "127.0.0.1:8080"
    assert settings.admin.enabled is True
    assert settings.users == []


def test_every_setting_has_a_default_and_a_description() -> None:
    models: list[type[BaseModel]] = [Settings, User]
    for info in Settings.model_fields.values():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            models.append(info.annotation)
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
            assert "\n" not in info.description
            if model is not User or name != "user":
                assert not info.is_required(), f"{model.__name__}.{name} has no default"


def test_misspelt_key_is_rejected() -> None:
    with pytest.raises(ValidationError):
        RegistrarSettings.model_validate({"min_expire": 30})


def test_values_are_not_coerced_from_strings() -> None:
    with pytest.raises(ValidationError):
        RegistrarSettings.model_validate({"min_expires": "60"})
    with pytest.raises(ValidationError):
        ServerSettings.model_validate({"record_route": "no"})


def test_effective_domains_default_to_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "PBX1")
    assert ServerSettings().effective_domains() == ["pbx1"]
    assert ServerSettings().effective_instance_id() == "pbx1"
    server = ServerSettings(domains=["Example.com", "10.0.0.1"], instance_id="node-a")
    assert server.effective_domains() == ["example.com", "10.0.0.1"]
    assert server.effective_instance_id() == "node-a"


@pytest.mark.parametrize("domain", ["ex ample.com", "a..b", "-x.com", "10.0.0.300", "::1", ""])
def test_bad_domains_are_rejected(domain: str) -> None:
    with pytest.raises(ValidationError):
        ServerSettings(domains=[domain])


def test_a_domain_is_kept_as_a_requests_host_compares_it() -> None:
    # Lower case, without its trailing dot: "Site-A.example." in the settings
    # never matched a request for site-a.example (nor a related domain's call).
    assert ServerSettings(domains=["Site-A.example."]).domains == ["site-a.example"]
    related = RegistrarSettings(related_domains=["Site-B.example."]).related_domains
    assert related == ["site-b.example"]


def test_duplicate_domains_are_rejected_ignoring_case() -> None:
    with pytest.raises(ValidationError):
        ServerSettings(domains=["example.com", "EXAMPLE.com"])


def test_data_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    server = ServerSettings()
    assert server.resolve_data_dir(tmp_path / "centrex.toml") == tmp_path / "data"
    assert ServerSettings(data_dir="/var/lib/centrex").resolve_data_dir(
        tmp_path / "c.toml"
    ) == Path("/var/lib/centrex")


def test_data_dir_without_a_file_is_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ServerSettings().resolve_data_dir(None) == tmp_path.resolve() / "data"


def test_log_files_are_relative_to_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "logging": {"file": "centrex.log"},
            "network": {"tls_certificate": "tls/cert.pem"},
        }
    )
    paths = settings.resolve_paths(tmp_path / "centrex.toml")
    assert paths.data_dir == tmp_path / "data"
    assert paths.log_file == tmp_path / "data" / "centrex.log"
    assert paths.sip_trace_file == tmp_path / "data" / "sip-trace.log"
    assert paths.tls_certificate == tmp_path / "tls" / "cert.pem"
    assert paths.tls_private_key is None
    assert Settings().resolve_paths(tmp_path / "centrex.toml").log_file is None


# -- listen addresses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:0.0.0.0:5060", ListenAddress("udp", "0.0.0.0", 5060)),
        ("tcp:192.0.2.1:5080", ListenAddress("tcp", "192.0.2.1", 5080)),
        ("tls:pbx.example.com:5061", ListenAddress("tls", "pbx.example.com", 5061)),
        ("ws:0.0.0.0:8088", ListenAddress("ws", "0.0.0.0", 8088)),
        ("wss:0.0.0.0:8089", ListenAddress("wss", "0.0.0.0", 8089)),
        ("udp:[::]:5060", ListenAddress("udp", "::", 5060)),
        ("TCP:[2001:db8::1]:5060", ListenAddress("tcp", "2001:db8::1", 5060)),
        ("udp:127.0.0.1:0", ListenAddress("udp", "127.0.0.1", 0)),
    ],
)
def test_listen_address_parsing(text: str, expected: ListenAddress) -> None:
    assert ListenAddress.parse(text) == expected


def test_listen_address_prints_ipv6_in_brackets() -> None:
    assert str(ListenAddress.parse("udp:[::1]:5060")) == "udp:[::1]:5060"
    assert str(ListenAddress.parse("UDP:10.0.0.1:5060")) == "udp:10.0.0.1:5060"


def test_listen_address_properties() -> None:
    assert ListenAddress.parse("udp:[::]:5060").is_ipv6
    assert not ListenAddress.parse("udp:0.0.0.0:5060").is_reliable
    assert ListenAddress.parse("ws:0.0.0.0:80").is_reliable
    assert ListenAddress.parse("wss:0.0.0.0:443").is_secure
    assert not ListenAddress.parse("tcp:0.0.0.0:5060").is_secure


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("sctp:0.0.0.0:5060", 'transport "sctp" is not one of udp, tcp, tls, ws, wss'),
        ("http:0.0.0.0:80", 'transport "http"'),
        ("0.0.0.0:5060", 'transport "0.0.0.0"'),
        ("udp", "transport:host:port"),
        ("udp:0.0.0.0", "needs a port"),
        ("udp:0.0.0.0:", "needs a port"),
        ("udp:0.0.0.0:sip", 'port "sip" is not a number'),
        ("udp:0.0.0.0:65536", "out of range"),
        ("udp:::1:5060", "must be written in brackets"),
        ("udp:[::1:5060", "missing ']'"),
        ("udp:[::1]5060", "needs ':port'"),
        ("udp:[1.2.3.4]:5060", "not an IPv6 address"),
        ("udp::5060", "needs a host"),
        ("udp:bad host:5060", "host name"),
    ],
)
def test_bad_listen_addresses_are_explained(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        ListenAddress.parse(text)
    assert complaint in str(raised.value)


def test_listen_setting_is_normalised_and_parsed() -> None:
    network = NetworkSettings(listen=["UDP:[::]:5060", "tcp:10.0.0.1:5070"])
    assert network.listen == ["udp:[::]:5060", "tcp:10.0.0.1:5070"]
    assert network.listen_addresses() == [
        ListenAddress("udp", "::", 5060),
        ListenAddress("tcp", "10.0.0.1", 5070),
    ]


def test_listen_rejects_duplicates_and_empty_lists() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        NetworkSettings(listen=["udp:0.0.0.0:5060", "UDP:0.0.0.0:5060"])
    with pytest.raises(ValidationError, match="at least one"):
        NetworkSettings(listen=[])


def test_tls_listener_needs_certificate_and_key() -> None:
    with pytest.raises(ValidationError, match="tls_certificate"):
        NetworkSettings(listen=["tls:0.0.0.0:5061"])
    with pytest.raises(ValidationError, match="tls_private_key"):
        NetworkSettings(listen=["wss:0.0.0.0:443"], tls_certificate="cert.pem")
    NetworkSettings(listen=["tls:0.0.0.0:5061"], tls_certificate="c.pem", tls_private_key="k.pem")


def test_buffer_must_hold_one_message() -> None:
    with pytest.raises(ValidationError, match="max_message_bytes"):
        NetworkSettings(max_message_bytes=100_000)


@pytest.mark.parametrize("address", ["", "10.0.0.1", "pbx.example.com", "::1", "[2001:db8::1]"])
def test_advertised_address_accepts_hosts_and_ips(address: str) -> None:
    assert NetworkSettings(advertised_address=address).advertised_address == address


def test_admin_address() -> None:
    assert Settings().admin.address() == ("127.0.0.1", 8080)
    assert Settings.model_validate({"admin": {"listen": "[::1]:9000"}}).admin.address() == (
        "::1",
        9000,
    )


# -- registrar and timers -------------------------------------------------------


def test_expires_must_be_ordered() -> None:
    RegistrarSettings(min_expires=10, default_expires=10, max_expires=10)
    with pytest.raises(ValidationError, match="max_expires"):
        RegistrarSettings(min_expires=8000)
    with pytest.raises(ValidationError, match="between min_expires and max_expires"):
        RegistrarSettings(default_expires=30)
    with pytest.raises(ValidationError):
        RegistrarSettings(max_contacts=0)


def test_literal_settings_accept_only_their_choices() -> None:
    with pytest.raises(ValidationError):
        RegistrarSettings.model_validate({"store": "disk"})
    with pytest.raises(ValidationError):
        RegistrarSettings.model_validate({"max_contacts_policy": "drop"})


def test_log_level_is_case_insensitive() -> None:
    assert Settings.model_validate({"logging": {"level": "DEBUG"}}).logging.level == "debug"


def test_t2_must_not_be_below_t1() -> None:
    with pytest.raises(ValidationError, match="t1_ms"):
        TimeoutSettings(t1_ms=5000)
    TimeoutSettings(t1_ms=4000, t2_ms=4000)


def test_timer_config_is_in_seconds() -> None:
    assert TimeoutSettings().timer_config() == {
        "t1": 0.5,
        "t2": 4.0,
        "t4": 5.0,
        "timer_b": 32.0,
        "timer_f": 32.0,
        "timer_c": 180.0,
    }
    custom = TimeoutSettings(t1_ms=250, t2_ms=2000, t4_ms=2500, transaction_s=16, ringing_s=300)
    assert custom.timer_config() == {
        "t1": 0.25,
        "t2": 2.0,
        "t4": 2.5,
        "timer_b": 16.0,
        "timer_f": 16.0,
        "timer_c": 300.0,
    }
    assert all(type(value) is float for value in custom.timer_config().values())


# -- users ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1001", "alice", "a.b_c+d-e", "+4930123"])
def test_valid_user_names(name: str) -> None:
    assert User(user=name).user == name


@pytest.mark.parametrize("name", ["", "al ice", "a@b", "a:b", "bob;x", "é"])
def test_invalid_user_names(name: str) -> None:
    with pytest.raises(ValidationError, match="SIP user name"):
        User(user=name)


def test_user_names_are_unique_ignoring_case_by_default() -> None:
    with pytest.raises(ValidationError, match="already used by users"):
        Settings(users=[User(user="alice"), User(user="Alice")])
    with pytest.raises(ValidationError, match="already used by users"):
        Settings(users=[User(user="1001"), User(user="1001")])


def test_case_sensitive_registrar_allows_names_differing_in_case() -> None:
    settings = Settings(
        registrar=RegistrarSettings(case_sensitive=True),
        users=[User(user="alice"), User(user="Alice")],
    )
    assert settings.find_user("Alice") is settings.users[1]
    assert settings.find_user("ALICE") is None
    with pytest.raises(ValidationError):
        Settings(
            registrar=RegistrarSettings(case_sensitive=True),
            users=[User(user="alice"), User(user="alice")],
        )


def test_find_user_ignores_case_by_default() -> None:
    settings = Settings(users=[User(user="Alice"), User(user="1001")])
    assert settings.find_user("alice") is settings.users[0]
    assert settings.find_user("1002") is None

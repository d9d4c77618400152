"""Loading the file: every problem names the file, the key, the value and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from centrex.config import ConfigError, Settings, check_settings, load_settings, parse_settings


def write(tmp_path: Path, text: str, name: str = "centrex.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    for problem in raised.value.problems:
        assert problem.startswith(f"{path}: "), problem
    assert raised.value.path == str(path)
    prefix = f"{path}: "
    return [problem.removeprefix(prefix) for problem in raised.value.problems]


def test_no_path_gives_the_embedded_defaults() -> None:
    assert load_settings(None) == Settings()


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


def test_values_are_read_from_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        domains = ["example.com"]
        workers = 2

        [network]
        listen = ["udp:[::]:5060"]

        [registrar]
        store = "database"

        [[users]]
        user = "1001"
        password = "secret"

        [[users]]
        user = "1002"
        enabled = false
        """,
    )
    settings = load_settings(str(path))
    assert settings.server.domains == ["example.com"]
    assert settings.server.workers == 2
    assert settings.network.listen_addresses()[0].host == "::"
    assert settings.registrar.store == "database"
    assert [u.user for u in settings.users] == ["1001", "1002"]
    assert settings.users[1].enabled is False


def test_bad_value_names_file_key_value_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "[registrar]\nmin_expires = -5\n", name="centrex.toml")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value) == (
        f"{path}: registrar.min_expires = -5: must be at least 1 (seconds). "
        "Fix the value or remove the key to use the default 60."
    )


def test_relative_path_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[registrar]\nmin_expires = 0\n")
    with pytest.raises(ConfigError, match=r"^centrex\.toml: registrar\.min_expires = 0: "):
        load_settings("centrex.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[server]\nworkers = 0\n",
            "server.workers = 0: must be at least 1. "
            "Fix the value or remove the key to use the default 1.",
        ),
        (
            '[server]\nrecord_route = "no"\n',
            'server.record_route = "no": must be true or false (without quotes). '
            "Fix the value or remove the key to use the default true.",
        ),
        (
            '[registrar]\nmin_expires = "60"\n',
            'registrar.min_expires = "60": must be a whole number without quotes (seconds). '
            "Fix the value or remove the key to use the default 60.",
        ),
        (
            "[timeouts]\nt1_ms = 0.5\n",
            "timeouts.t1_ms = 0.5: must be a whole number without quotes (milliseconds). "
            "Fix the value or remove the key to use the default 500.",
        ),
        (
            "[network]\nmax_message_bytes = 10\n",
            "network.max_message_bytes = 10: must be at least 1024 (bytes). "
            "Fix the value or remove the key to use the default 65536.",
        ),
        (
            "[auth]\nrate_limit_per_s = 0\n",
            "auth.rate_limit_per_s = 0: must be at least 1 (per second). "
            "Fix the value or remove the key to use the default 50.",
        ),
        (
            "[auth]\nalgorithms = []\n",
            "auth.algorithms = []: must have at least 1 item. "
            'Fix the value or remove the key to use the default ["SHA-256", "MD5"].',
        ),
        (
            '[registrar]\nstore = "disk"\n',
            'registrar.store = "disk": must be one of "memory", "database". '
            'Fix the value or remove the key to use the default "memory".',
        ),
        (
            '[logging]\nlevel = "verbose"\n',
            'logging.level = "verbose": must be one of "debug", "info", "warning", "error". '
            'Fix the value or remove the key to use the default "info".',
        ),
        (
            '[server]\ndomains = "example.com"\n',
            'server.domains = "example.com": must be a list in brackets, e.g. ["a", "b"]. '
            "Fix the value or remove the key to use the default [].",
        ),
        (
            "[registrar]\ndefault_expires = 30\n",
            "registrar.default_expires = 30: must be between min_expires and max_expires "
            "(60 to 7200 seconds). Fix the value or remove the key to use the default 3600.",
        ),
        (
            '[admin]\nlisten = "localhost"\n',
            'admin.listen = "localhost": needs a port, e.g. 127.0.0.1:8080. '
            'Fix the value or remove the key to use the default "127.0.0.1:8080".',
        ),
        (
            "registrar = 5\n",
            "registrar = 5: must be a table, written [registrar]. "
            "Write it as a table, or remove it to use the defaults.",
        ),
        (
            '[network]\nadvertised_address = "192.0.2.1:5060"\n',
            'network.advertised_address = "192.0.2.1:5060": takes a host alone, without a '
            'scheme or port: write "192.0.2.1". Fix the value or remove the key to use the '
            'default "".',
        ),
        (
            '[network]\nlisten = ["tcp:127.0.0.1:5060", "tls:127.0.0.1:5060"]\n'
            'tls_certificate = "c.pem"\ntls_private_key = "k.pem"\n',
            'network.listen[1] = "tls:127.0.0.1:5060": takes the TCP port of '
            "tcp:127.0.0.1:5060. Give each of tcp, tls, ws and wss its own port "
            "(by custom 5060, 5061, 8080, 8443).",
        ),
    ],
)
def test_each_validation_error_names_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_cross_field_error_on_a_default_value_says_so(tmp_path: Path) -> None:
    assert problems(tmp_path, "[registrar]\nmin_expires = 5000\n") == [
        "registrar.default_expires = 3600 (default): must be between min_expires and "
        "max_expires (5000 to 7200 seconds). Set registrar.default_expires in the file, "
        "or change the setting it is checked against."
    ]
    assert problems(tmp_path, "[timeouts]\nt1_ms = 5000\n") == [
        "timeouts.t2_ms = 4000 (default): must be at least t1_ms (5000 milliseconds). "
        "Set timeouts.t2_ms in the file, or change the setting it is checked against."
    ]


def test_tls_listener_without_certificate_explains_both_fixes(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[network]\nlisten = ["tls:0.0.0.0:5061"]\n')
    assert problem.startswith('network.tls_certificate = "" (default): is needed because')
    assert "Set network.tls_certificate to a PEM file" in problem


def test_bad_listen_entries_are_named_by_index(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[network]\nlisten = ["udp:0.0.0.0:5060", "sctp:0.0.0.0:5060", "udp:::1:5060"]\n',
    )
    assert found == [
        'network.listen[1] = "sctp:0.0.0.0:5060": transport "sctp" is not one of udp, tcp, '
        'tls, ws, wss (write "transport:host:port", e.g. "udp:0.0.0.0:5060"). '
        "Fix or remove this entry.",
        'network.listen[2] = "udp:::1:5060": an IPv6 address must be written in brackets, '
        "e.g. [::1]:5060. Fix or remove this entry.",
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path, "[server]\nworkers = 0\n[registrar]\nmax_contacts = 0\nmin_expire = 3\n"
    )
    assert [problem.split(" ", 1)[0] for problem in found] == [
        "server.workers",
        "registrar.max_contacts",
        "registrar.min_expire:",
    ]


# -- unknown keys ---------------------------------------------------------------


def test_unknown_key_suggests_the_closest_setting(tmp_path: Path) -> None:
    assert problems(tmp_path, "[registrar]\nmin_expire = 60\n") == [
        "registrar.min_expire: unknown setting (did you mean registrar.min_expires?)"
    ]


def test_unknown_table_suggests_the_closest_table(tmp_path: Path) -> None:
    assert problems(tmp_path, "[registar]\nmin_expires = 60\n") == [
        "registar: unknown table (did you mean registrar?)"
    ]


def test_key_in_the_wrong_table_points_to_the_right_one(tmp_path: Path) -> None:
    assert problems(tmp_path, 'domains = ["example.com"]\n') == [
        "domains: unknown setting (did you mean server.domains? it belongs in [server])"
    ]
    assert problems(tmp_path, '[server]\nstore = "memory"\n') == [
        "server.store: unknown setting (did you mean registrar.store? it belongs in [registrar])"
    ]


def test_unknown_key_without_a_near_match_lists_the_table(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "[admin]\ncolour = 1\n")
    assert problem == "admin.colour: unknown setting; the settings of [admin] are listen, enabled"


def test_unknown_key_in_a_user_entry(tmp_path: Path) -> None:
    assert problems(tmp_path, '[[users]]\nuser = "1001"\npasswd = "x"\n') == [
        "users[0].passwd: unknown setting (did you mean users[0].password?)"
    ]


# -- users ----------------------------------------------------------------------


def test_duplicate_users_are_named(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[users]]\nuser = "alice"\n[[users]]\nuser = "Alice"\n')
    assert found == [
        'users[1].user = "Alice": is already used by users[0] ("alice"); user names are '
        "compared ignoring case unless registrar.case_sensitive = true. "
        "Give each user a different name."
    ]


def test_a_user_named_as_the_registrar_is_refused(tmp_path: Path) -> None:
    # Requests to sip:<registrar.name>@domain reach the server itself: such
    # a user's phone would never get its subscriptions (the server took them).
    found = problems(tmp_path, '[registrar]\nname = "1001"\n[[users]]\nuser = "1001"\n')
    assert found == [
        'users[0].user = "1001": is the registrar\'s name (registrar.name = "1001"): its '
        "subscriptions and OPTIONS would reach the server, not this user. Rename the user, "
        "or set registrar.name to a name no user has."
    ]
    assert problems(tmp_path, '[[users]]\nuser = "registrar"\n') != []  # in any case


def test_case_sensitive_registrar_accepts_names_differing_in_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[registrar]\ncase_sensitive = true\n[[users]]\nuser = "alice"\n'
        '[[users]]\nuser = "Alice"\n',
    )
    assert len(load_settings(path).users) == 2


def test_user_entry_problems(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[users]]\nuser = "al ice"\n[[users]]\ndescription = "x"\n')
    assert found == [
        'users[0].user = "al ice": must be a SIP user name made of letters, digits, '
        "'.', '_', '+' or '-', e.g. \"1001\" or \"alice\". Fix the value.",
        'users[1].user: missing; every [[users]] entry needs one, e.g. user = "1001".',
    ]


# -- the file itself ------------------------------------------------------------


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "[server]\nworkers = 2\n\n[registrar]\nmin_expires = \n")
    assert problem.startswith("line 5, column ")
    assert "invalid TOML" in problem
    assert problem.endswith("\n    min_expires =")


def test_duplicate_key_is_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "[server]\nworkers = 2\nworkers = 3\n")
    assert problem.startswith("line 3, ")


def test_unterminated_string_names_the_line(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[server]\nuser_agent = "Centrex\n')
    assert problem.startswith("line 2, ")


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value) == f"{path}: no such file (create one with `centrex config init`)"


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read the file"):
        load_settings(tmp_path)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "centrex.toml"
    path.write_bytes(b'[server]\nuser_agent = "Caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"centrex\.toml: line 2: not UTF-8"):
        load_settings(path)


def test_parse_settings_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^admin-edit: server\.workers = 0: "):
        parse_settings("[server]\nworkers = 0\n", "admin-edit")


# -- warnings -------------------------------------------------------------------


def test_defaults_have_no_warnings(tmp_path: Path) -> None:
    assert check_settings(write(tmp_path, "")) == []
    assert check_settings(None) == []


def test_plain_text_password_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, '[[users]]\nuser = "1001"\npassword = "secret"\n[[users]]\nuser = "2"\n')
    path.chmod(0o600)
    warnings = check_settings(path)
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{path}: users[0].password is stored in plain text")
    assert warnings[1].startswith(f"{path}: users[1] (2): no password and no hashes")


def test_users_who_can_never_authenticate_are_warnings(tmp_path: Path) -> None:
    # config check says what the server would refuse them at every REGISTER:
    # hashes for one domain of two (no [auth] realm), for a realm the server
    # never challenges in, an ill-formed hash, no password at all.
    md5 = "0" * 32
    path = write(
        tmp_path,
        '[server]\ndomains = ["a.test", "b.test"]\n'
        f'[[users]]\nuser = "3001"\nrealm = "a.test"\nha1_md5 = "{md5}"\n'
        f'[[users]]\nuser = "3002"\nrealm = "old.test"\nha1_md5 = "{md5}"\n'
        '[[users]]\nuser = "3003"\nrealm = "a.test"\nha1_md5 = "zz"\n'
        '[[users]]\nuser = "3004"\n',
    )
    warnings = check_settings(path)
    assert any("(3001)" in w and "cannot authenticate in b.test" in w for w in warnings)
    assert any("(3002)" in w and "never challenges" in w for w in warnings)
    assert any("(3003)" in w and "ignored" in w for w in warnings)
    assert any("(3004)" in w and "no password and no hashes" in w for w in warnings)
    # With one realm for both domains, 3001 is fine.
    text = path.read_text().replace("[[users]]", '[auth]\nrealm = "a.test"\n[[users]]', 1)
    path.write_text(text)
    assert not any("(3001)" in w for w in check_settings(path))


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_readable_file_with_passwords_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, '[[users]]\nuser = "1001"\npassword = "secret"\n')
    path.chmod(0o644)
    assert any("chmod 600" in warning for warning in check_settings(path))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server]\nallow_relay = true\n", "server.allow_relay = true"),
        ("[registrar]\nallow_unknown_users = true\n", "registrar.allow_unknown_users = true"),
        ('[admin]\nlisten = "0.0.0.0:8080"\n', 'admin.listen = "0.0.0.0:8080"'),
        ("[timeouts]\nringing_s = 60\n", "timeouts.ringing_s = 60: RFC 3261 16.6"),
        (
            '[network]\nlisten = ["tls:0.0.0.0:5061"]\n'
            'tls_certificate = "cert.pem"\ntls_private_key = "key.pem"\n',
            'network.tls_certificate = "cert.pem": no such file',
        ),
    ],
)
def test_risky_settings_are_warnings(tmp_path: Path, text: str, fragment: str) -> None:
    warnings = check_settings(write(tmp_path, text))
    assert any(fragment in warning for warning in warnings), warnings


def test_quiet_admin_and_existing_tls_files_are_not_warnings(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    text = (
        '[network]\nlisten = ["tls:0.0.0.0:5061"]\n'
        'tls_certificate = "cert.pem"\ntls_private_key = "key.pem"\n'
        '[admin]\nlisten = "[::1]:8080"\n'
    )
    assert check_settings(write(tmp_path, text)) == []


def test_check_settings_raises_for_an_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        check_settings(write(tmp_path, "[server]\nworkers = 0\n"))


def test_a_relative_sqlite_database_is_in_the_settings_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As every other path of the file: `serve` and `registrations` started
    # from other folders open the same database.
    path = tmp_path / "centrex.toml"
    path.write_text('[registrar.database]\nurl = "sqlite+aiosqlite:///loc.db"\n')
    monkeypatch.chdir("/")
    url = load_settings(path).registrar.database.url
    assert url == f"sqlite+aiosqlite:///{tmp_path}/loc.db"

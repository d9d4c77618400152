"""The `centrex` command line."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from centrex.cli import main
from centrex.config import load_settings
from centrex.transport.selfsigned import make_self_signed

OPTIONS = (
    b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\n"
    b"CSeq: 1 OPTIONS\r\n\r\n"
)


def test_parse_shows_the_typed_views_of_a_valid_message() -> None:
    result = CliRunner().invoke(main, ["parse"], input=OPTIONS)
    assert result.exit_code == 0
    assert "request   OPTIONS sip:example.com" in result.output
    assert "cseq      1 OPTIONS" in result.output


def test_parse_accepts_a_file_typed_with_plain_line_feeds() -> None:
    result = CliRunner().invoke(main, ["parse"], input=OPTIONS.replace(b"\r\n", b"\n"))
    assert result.exit_code == 0
    assert "call-id   x" in result.output


def test_parse_reports_the_status_a_malformed_request_gets() -> None:
    bad = OPTIONS.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    result = CliRunner().invoke(main, ["parse"], input=bad)
    assert result.exit_code == 1
    assert "answered 400" in result.output
    assert "CSeq" in result.output


def test_parse_reports_garbage_as_dropped() -> None:
    result = CliRunner().invoke(main, ["parse"], input=b"hello\r\n\r\n")
    assert result.exit_code == 1
    assert "dropped" in result.output


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "parse" in result.output
    assert "serve" in result.output


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "centrex.toml"
    path.write_text(
        '# my office\n[server]\ndomains = ["example.com"]\n'
        f'data_dir = "{tmp_path / "data"}"\n\n[[users]]\nuser = "1001"\ndescription = "Alice"\n'
    )
    return path


def test_user_add_stores_hashes_never_the_password(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = CliRunner().invoke(
        main,
        ["user", "add", "1002", "--description", "Bob", "--config", str(path)],
        input="s3cret\ns3cret\n",
    )
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert "# my office" in text
    assert "s3cret" not in text
    settings = load_settings(path)
    bob = settings.users[1]
    expected = hashlib.md5(b"1002:example.com:s3cret").hexdigest()
    assert (bob.user, bob.description, bob.realm, bob.ha1_md5) == (
        "1002",
        "Bob",
        "example.com",
        expected,
    )
    assert bob.ha1_sha256 == hashlib.sha256(b"1002:example.com:s3cret").hexdigest()


def test_user_add_refuses_the_registrars_name_and_writes_nothing(tmp_path: Path) -> None:
    # The next start would refuse the file (the server takes that name's
    # subscriptions); it is refused here, before the password is asked.
    path = _config(tmp_path)
    before = path.read_text()
    result = CliRunner().invoke(main, ["user", "add", "registrar", "--config", str(path)])
    assert result.exit_code == 2
    assert "is the registrar's name (registrar.name)" in result.output
    assert path.read_text() == before


def test_user_add_with_two_domains_and_no_realm_says_where_the_user_cannot_log_in(
    tmp_path: Path,
) -> None:
    # Each domain is its own realm, and the hashes answer one realm only.
    path = _config(tmp_path)
    path.write_text(path.read_text().replace('["example.com"]', '["example.com", "b.test"]'))
    result = CliRunner().invoke(
        main, ["user", "add", "1002", "--config", str(path)], input="s3cret\ns3cret\n"
    )
    assert result.exit_code == 0, result.output
    assert "cannot authenticate in b.test" in result.output
    assert '[auth] realm = "example.com"' in result.output
    one_realm = '[auth]\nrealm = "office"\n\n[[users]]'
    path.write_text(path.read_text().replace("[[users]]", one_realm, 1))
    result = CliRunner().invoke(
        main, ["user", "passwd", "1002", "--config", str(path)], input="s3cret\ns3cret\n"
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_user_passwd_replaces_the_hashes_of_an_existing_user(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = CliRunner().invoke(
        main, ["user", "passwd", "1001", "--config", str(path)], input="pw1\npw1\n"
    )
    assert result.exit_code == 0, result.output
    alice = load_settings(path).users[0]
    assert alice.ha1_md5 == hashlib.md5(b"1001:example.com:pw1").hexdigest()


def test_user_passwd_of_an_unknown_user_names_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = CliRunner().invoke(
        main, ["user", "passwd", "9999", "--config", str(path)], input="pw\npw\n"
    )
    assert result.exit_code == 2
    assert str(path) in result.output


def test_bans_list_shows_what_the_server_published_and_clear_asks_it(tmp_path: Path) -> None:
    from centrex.auth.abuse import Ban, FailureTracker
    from centrex.auth.bans_file import apply_clear_requests, write_bans

    path = _config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    write_bans(data, [Ban("192.0.2.66", now - 10, now + 600, 10)])
    listed = CliRunner().invoke(main, ["bans", "list", "--config", str(path)])
    assert "192.0.2.66" in listed.output
    cleared = CliRunner().invoke(main, ["bans", "clear", "192.0.2.66", "--config", str(path)])
    assert cleared.exit_code == 0
    tracker = FailureTracker(1, 60, 600, 100)
    tracker.record_failure("192.0.2.66", now)
    assert tracker.is_banned("192.0.2.66", now)
    assert apply_clear_requests(data, tracker) == 1
    assert not tracker.is_banned("192.0.2.66", now)


def test_bans_clear_refuses_what_is_not_an_address_or_a_server_that_never_ran(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path)
    result = CliRunner().invoke(main, ["bans", "clear", "--config", str(path)])
    assert result.exit_code == 1 and "no server has run" in result.output, result.output
    assert "Traceback" not in result.output
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, ["bans", "clear", "notanip", "--config", str(path)])
    assert result.exit_code == 2 and "not an IP address" in result.output, result.output
    assert not (tmp_path / "data" / "bans-clear.json").exists()


def test_tls_selfsigned_writes_a_certificate_a_tls_listener_accepts(tmp_path: Path) -> None:
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    result = CliRunner().invoke(
        main, ["tls", "selfsigned", str(cert), str(key), "--host", "127.0.0.1"]
    )
    assert result.exit_code == 0, result.output
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)  # raises if the pair does not match
    assert key.stat().st_mode & 0o077 == 0


def test_subscriptions_reads_the_servers_recovery_file(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = CliRunner().invoke(main, ["subscriptions", "--config", str(path)])
    assert result.exit_code == 0
    assert "no subscriptions" in result.output


def test_serving_process_freezes_start_up_objects_and_defers_full_collections() -> None:
    import gc
    import sys

    from centrex.cli import GC_THRESHOLDS, SWITCH_INTERVAL_S, tune_serving_process

    before, switch = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_serving_process()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        # The loop waits at most this long for the GIL behind the recovery writer.
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S < switch
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        sys.setswitchinterval(switch)


def test_serving_process_runs_young_collections_on_a_clock() -> None:
    """Objects that die as fast as they are made never trip the count-driven
    young pass; in a serving loop it runs every YOUNG_GC_INTERVAL_S anyway."""
    import asyncio
    import gc

    from centrex.cli import YOUNG_GC_INTERVAL_S, tune_garbage_collector

    before = gc.get_threshold()

    async def serve_a_while() -> int:
        tune_garbage_collector()
        start = gc.get_stats()[1]["collections"]  # a pass of the two younger
        await asyncio.sleep(YOUNG_GC_INTERVAL_S * 4.5)  # allocating next to nothing
        return int(gc.get_stats()[1]["collections"] - start)

    try:
        assert asyncio.run(serve_a_while()) >= 3
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_what_outlives_a_young_pass_goes_to_the_oldest_generation_at_once() -> None:
    """A call's INVITE transactions live for Timers L and M (32 s): walked
    once by a young pass, then left to the rare full collections, not walked
    again every second by a middle-generation pass (35-45 ms at 1,000 calls/s)."""
    import asyncio
    import gc

    from centrex.cli import YOUNG_GC_INTERVAL_S, tune_garbage_collector

    before = gc.get_threshold()

    async def serve_a_while() -> bool:
        tune_garbage_collector()
        alive = [[n] for n in range(100)]  # a transaction's objects, say
        await asyncio.sleep(YOUNG_GC_INTERVAL_S * 1.5)
        oldest = {id(o) for o in gc.get_objects(generation=2)}
        return all(id(o) in oldest for o in alive)

    try:
        assert asyncio.run(serve_a_while())
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ('[network]\nlisten = ["ws:127.0.0.1:5080"]\n', "network.listen"),
        ('[registrar]\nstore = "database"\n', "registrar.database.url"),
        (
            '[registrar]\nstore = "database"\n[registrar.database]\nurl = "bogus://x"\n',
            "registrar.database.url",
        ),
        (
            '[registrar]\nstore = "database"\n[registrar.database]\nurl = "postgresql://x/y"\n',
            "registrar.database.url",
        ),
        ('[server]\nworkers = 2\n[network]\nlisten = ["udp:127.0.0.1:0"]\n', "network.listen"),
    ],
)
def test_config_check_refuses_what_serve_refuses(tmp_path: Path, settings: str, named: str) -> None:
    # "config check" runs the validation of "serve": a file it calls OK must
    # not stop the server at start (nor a bad URL end it with a traceback).
    path = tmp_path / "centrex.toml"
    path.write_text(settings, encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and named in result.output, result.output
    assert "Traceback" not in result.output


def test_config_check_refuses_a_certificate_and_a_key_that_do_not_match(tmp_path: Path) -> None:
    # serve would stop at start with KEY_VALUES_MISMATCH; check says so first.
    for name in ("a", "b"):
        make_self_signed(tmp_path / f"{name}.pem", tmp_path / f"{name}.key", "localhost", days=1)
    path = tmp_path / "centrex.toml"
    listen = '[network]\nlisten = ["tls:127.0.0.1:5061"]\n'
    path.write_text(
        listen + 'tls_certificate = "a.pem"\ntls_private_key = "b.key"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert "network.tls_private_key" in result.output and "b.key" in result.output
    path.write_text(
        listen + 'tls_certificate = "a.pem"\ntls_private_key = "a.key"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output


def test_serving_raises_the_open_file_limit_to_the_hard_one() -> None:
    # Every TCP/TLS connection holds a descriptor: at a soft limit of 1,024
    # phones could not connect while the per-address limits let them.
    code = (
        "import resource\n"
        "from centrex.cli import tune_serving_process\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "tune_serving_process()  # (what serve does once it serves)\n"
        "now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(now == hard if hard != resource.RLIM_INFINITY else now >= 65536)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True", done.stderr


def _serve(path: Path) -> subprocess.CompletedProcess[str]:
    """``centrex serve --config path`` in a process of its own (expected to stop)."""
    return subprocess.run(
        [sys.executable, "-m", "centrex.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_says_why_the_database_cannot_be_used_without_a_traceback(tmp_path: Path) -> None:
    # As `centrex db check` says it: a refused port, naming the key (it was
    # "[Errno 111] Connection refused", or a 184-line SQLAlchemy traceback).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    path = tmp_path / "centrex.toml"
    path.write_text(
        '[network]\nlisten = ["udp:127.0.0.1:0"]\n[registrar]\nstore = "database"\n'
        "[registrar.database]\n"
        f'url = "postgresql+asyncpg://centrex@127.0.0.1:{closed_port}/centrex"\n',
        encoding="utf-8",
    )
    done = _serve(path)
    assert done.returncode == 1, done.stderr
    assert "registrar.database.url: unreachable: connection refused" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_db_check_of_a_database_it_cannot_reach_says_nothing_of_the_schema() -> None:
    # It printed "schema none (expected ...)" for every failure, as if the
    # schema were missing, above the real problem.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://centrex@127.0.0.1:{closed_port}/centrex"
    result = CliRunner().invoke(main, ["db", "check", "--url", url])
    assert result.exit_code == 1
    assert "connection refused" in result.output
    assert "schema" not in result.output


def test_registrations_with_a_mistyped_sqlite_path_creates_no_file(tmp_path: Path) -> None:
    # A read-only command: it said "no such table" with the SQL, and left an
    # empty database file at the mistyped path.
    missing = tmp_path / "nonexist.db"
    path = tmp_path / "centrex.toml"
    path.write_text(
        '[registrar]\nstore = "database"\n[registrar.database]\n'
        f'url = "sqlite+aiosqlite:///{missing}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["registrations", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert "does not exist" in result.output and "SELECT" not in result.output
    assert not missing.exists()


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            '[logging]\nfile = "/proc/centrex-none/x.log"\n',
            "logging.file: cannot write the event log /proc/centrex-none/x.log",
        ),
        ('[server]\ndata_dir = "{tmp}/a-file"\n', "server.data_dir: cannot use {tmp}/a-file"),
        (
            '[network]\nlisten = ["udp:127.0.0.1:{busy}"]\n',
            "network.listen: cannot listen on udp:127.0.0.1:{busy}: Address already in use. "
            "Fix: another program",
        ),
    ],
)
def test_serve_names_the_key_of_what_it_cannot_use_without_a_traceback(
    tmp_path: Path, settings: str, said: str
) -> None:
    # They passed `config check` and then failed with a traceback or a bare
    # "[Errno 17] File exists".
    (tmp_path / "a-file").write_text("")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        values = {"tmp": tmp_path, "busy": port}
        path = tmp_path / "centrex.toml"
        text = settings.format(**values)
        if "data_dir" not in text:
            text = f'[server]\ndata_dir = "{tmp_path / "data"}"\n' + text
        if "listen" not in text:
            text += '[network]\nlisten = ["udp:127.0.0.1:0"]\n'
        path.write_text(text, encoding="utf-8")
        done = _serve(path)
    assert done.returncode == 1, done.stderr
    assert f"{path}: {said.format(**values)}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "[Errno" not in done.stderr, done.stderr


def test_tls_selfsigned_keeps_what_exists_and_refuses_no_days(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("mine")
    result = CliRunner().invoke(main, ["tls", "selfsigned", str(cert), str(key)])
    assert result.exit_code == 2 and "use --force" in result.output, result.output
    assert cert.read_text() == "mine"
    result = CliRunner().invoke(main, ["tls", "selfsigned", str(cert), str(key), "--days", "0"])
    assert result.exit_code == 2, result.output
    result = CliRunner().invoke(main, ["tls", "selfsigned", str(cert), str(key), "--force"])
    assert result.exit_code == 0 and cert.read_text() != "mine", result.output
    missing = tmp_path / "none" / "c.pem"
    result = CliRunner().invoke(main, ["tls", "selfsigned", str(missing), str(key), "--force"])
    assert result.exit_code == 2 and not missing.parent.exists(), result.output


def test_config_init_into_a_missing_folder_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["config", "init", str(tmp_path / "none" / "c.toml")])
    assert result.exit_code == 2 and "cannot write it" in result.output, result.output

"""The ``centrex`` command."""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import signal
import sys
import time
from pathlib import Path
from typing import BinaryIO

import click

from centrex import __version__
from centrex.config import (
    ConfigError,
    Settings,
    check_settings,
    load_settings,
)
from centrex.sip.errors import ParseError
from centrex.sip.message import Request
from centrex.sip.parser import parse_message, validate_request, validate_response
from centrex.workers.frames import WorkerInfo

CONFIG_OPTION = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: the embedded defaults).",
)


def _load(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="centrex")
def main() -> None:
    """Centrex: a SIP proxy server with an integrated registrar."""


# -- serve ---------------------------------------------------------------------------


@main.command()
@CONFIG_OPTION
def serve(config_path: Path | None) -> None:
    """Run the SIP proxy and registrar until SIGTERM or Ctrl-C.

    SIGHUP reloads the user directory from the settings file. With
    [server] workers = N, N worker processes share the ports under one
    supervisor process, which passes these signals on.
    """
    settings = _load(config_path)
    workers = settings.server.workers
    if workers == 1:
        sys.exit(_serve_one(settings, config_path, None))
    from centrex.server import NotSupportedError, refuse_what_is_not_built
    from centrex.workers.supervisor import check_ports_free, run_workers

    try:
        refuse_what_is_not_built(settings)  # once, before the fork, rather than per worker
    except NotSupportedError as exc:
        click.echo(f"{config_path or 'settings'}: {exc}", err=True)
        sys.exit(2)
    from centrex.server import data_dir_error, listen_fix, os_reason

    where = config_path or "settings"
    addresses = [(a.transport, a.host, a.port) for a in settings.network.listen_addresses()]
    try:
        check_ports_free(addresses)
    except OSError as exc:
        click.echo(f"{where}: network.listen: {os_reason(exc)}. Fix: {listen_fix(exc)}.", err=True)
        sys.exit(1)
    from centrex.logs import setup_event_log
    from centrex.server import load_or_create_secret

    setup_event_log(settings.logging, None)  # the supervisor's own: stderr only
    # Made before the fork, so that every worker reads the same one (a token
    # in a Record-Route made by one worker is checked by another).
    data_dir = settings.resolve_paths(config_path).data_dir
    try:
        load_or_create_secret(data_dir)
    except OSError as exc:
        click.echo(f"{where}: {data_dir_error(data_dir, exc)}", err=True)
        sys.exit(1)
    sys.exit(run_workers(workers, lambda info: _serve_one(settings, config_path, info)))


def _serve_one(settings: Settings, config_path: Path | None, worker: WorkerInfo | None) -> int:
    """Serve in this process (one of several workers when ``worker`` is set);
    the exit code."""
    from centrex.logs import setup_event_log
    from centrex.server import NotSupportedError, StartError, os_reason
    from centrex.transport import loop_factory
    from centrex.workers.frames import worker_path

    where = config_path or "settings"
    paths = settings.resolve_paths(config_path)
    index = 0 if worker is None else worker.index
    log_file = None if paths.log_file is None else worker_path(paths.log_file, index)
    try:
        setup_event_log(settings.logging, log_file, worker=None if worker is None else index)
    except OSError as exc:
        click.echo(
            f"{where}: logging.file: cannot write the event log {log_file} ({os_reason(exc)}). "
            'Fix: point logging.file at a file in a folder the server may write, or "" for '
            "stderr only.",
            err=True,
        )
        return 1
    from centrex.registrar.sql import DatabaseUnavailableError, DuplicateInstanceError, SchemaError

    factory, loop_name = loop_factory(settings.server.event_loop)
    logging.getLogger("centrex").info("event loop: %s", loop_name)
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(_serve(settings, config_path, worker))
        except NotSupportedError as exc:
            click.echo(f"{where}: {exc}", err=True)
            return 2
        except (SchemaError, DuplicateInstanceError) as exc:
            click.echo(f"centrex serve: {exc}", err=True)
            return 2
        except (DatabaseUnavailableError, StartError) as exc:
            click.echo(f"{where}: {exc}", err=True)
            return 1
        except OSError as exc:
            click.echo(f"centrex serve: {os_reason(exc)}", err=True)
            return 1
    return 0


#: Garbage collector thresholds of a serving process (Python's: 700, 10, 10).
#: A full collection waits for 10,000 collections of the younger two (one
#: per ``YOUNG_GC_INTERVAL_S``: 1,000 s at least; CPython also waits until a
#: quarter of what is in the oldest generation came since the last one).
GC_THRESHOLDS = (10_000, 10, 10_000)


#: Seconds between the collections of the two younger generations that a
#: serving process runs itself.
YOUNG_GC_INTERVAL_S = 0.1

#: The interpreter's thread switch interval in a serving process (Python's
#: default is 5 ms): about how long the event loop waits for the GIL while a
#: worker thread computes (a thread of a library's, a plug-in's; the
#: recovery file's writer thread makes system calls and little else); longer
#: only while that thread is inside one long call into C.
SWITCH_INTERVAL_S = 0.0005


def tune_serving_process() -> None:
    """What ``centrex serve`` does once it serves: the collector tuned
    (``tune_garbage_collector``) and a short thread switch interval.

    A thread that computes shares the GIL with the loop: with Python's 5 ms
    switch interval a datagram that arrived while the recovery file was
    encoded in a thread (as it was before it moved to the loop's own
    thread) waited up to 5 ms for the loop to get it back (REGISTER p99 at
    200/s 4.5-4.8 ms, with 0.5 ms 0.8-1.3 ms; docs/benchmarks.md). The cost
    is more switches while a thread runs, which is seldom.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    tune_garbage_collector()
    raise_descriptor_limit()


#: The open-file limit ``raise_descriptor_limit`` asks for where there is no hard one.
_UNLIMITED_FILES = 65536


def raise_descriptor_limit() -> int:
    """Raise this process's open-file limit to the most it may have (the hard
    limit; the soft one is often 1,024): every TCP/TLS connection holds a
    descriptor, and at the soft limit new phones could not connect while the
    per-address limits still allowed them. Returns the limit in effect."""
    try:
        import resource  # (POSIX only)
    except ImportError:
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # (No hard limit, as on macOS: a generous number the kernel still takes.)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, _UNLIMITED_FILES)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft
    return wanted


def tune_garbage_collector() -> None:
    """Keep the collector's passes short and off the hot path (docs/benchmarks.md).

    Measured on the REGISTER and call paths: they leave no cyclic garbage
    (every object goes by reference counting), but every transaction lives
    for Timer J and every binding for hours, so with Python's thresholds full
    collections over the whole heap come every few seconds while registrations
    grow and stop the loop for up to a second with 70,000 registered. With
    these thresholds a full one waits for 10,000 young ones; what start-up
    and the recovery file created is frozen out of every pass.

    Young collections run on a clock instead (when called in a running event
    loop): objects that die as fast as they are made (transactions, NOTIFYs)
    keep the allocation count near zero, so the count-driven young pass came
    rarely and then walked tens of thousands of objects (40-75 ms under a
    NOTIFY fan-out); every 100 ms it walks what the last 100 ms left alive.
    Each pass takes the two younger generations together, so what is still
    alive goes to the oldest at once: a middle-generation pass every second
    walked the last second's survivors a second time, 35-45 ms with the loop
    stopped at 1,000 calls a second (INVITE transactions stay for Timers L
    and M), which was the calls' p99 (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return

    def young() -> None:
        gc.collect(1)
        loop.call_later(YOUNG_GC_INTERVAL_S, young)

    loop.call_later(YOUNG_GC_INTERVAL_S, young)


async def _serve(
    settings: Settings, config_path: Path | None, worker: WorkerInfo | None = None
) -> None:
    from centrex.server import Server

    server = Server(settings, config_path, worker)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Taken before the start: a stop asked for while the server starts (a
    # worker's first milliseconds, as the others already answer) stops it
    # cleanly once started, where the default action ended the process.
    # A worker holds these signals blocked until here (workers.supervisor).
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: server.reload_directory(config_path))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    await server.start()
    tune_serving_process()
    try:
        await stop.wait()
    finally:
        await server.stop()


# -- config ----------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Write, check and show settings files."""


@config.command("init")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_init(file: Path, force: bool) -> None:
    """Write FILE with every setting at its default, each explained."""
    if file.exists() and not force:
        click.echo(f"{file}: exists; use --force to overwrite it", err=True)
        sys.exit(2)
    from centrex.config.template import render_default_config

    try:
        file.write_text(render_default_config(), encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        click.echo(f"{file}: cannot write it: {reason} (is its folder there?)", err=True)
        sys.exit(2)
    click.echo(f"wrote {file}")


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Validate FILE: exit 0 when it loads (warnings are printed), 2 when not."""
    from centrex.server import NotSupportedError, refuse_what_is_not_built

    try:
        warnings = check_settings(file)
        # What serve refuses at start (a transport or combination not built yet).
        settings = load_settings(file)
        refuse_what_is_not_built(settings)
        _check_tls_files(settings, file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except NotSupportedError as exc:
        click.echo(f"{file}: {exc}", err=True)
        sys.exit(2)
    for warning in warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"{file}: OK")


def _check_tls_files(settings: Settings, file: Path) -> None:
    """The certificate and key of the ``tls:`` listeners load, and match,
    as ``serve`` will need them to; NotSupportedError naming the keys."""
    from centrex.server import NotSupportedError
    from centrex.transport.tls import server_context

    if not any(a.transport == "tls" for a in settings.network.listen_addresses()):
        return
    paths = settings.resolve_paths(file)
    try:
        server_context(str(paths.tls_certificate), str(paths.tls_private_key))
    except (OSError, ValueError) as exc:  # (ssl.SSLError is an OSError)
        raise NotSupportedError(
            f"network.tls_certificate / network.tls_private_key: {exc}; "
            "give a PEM certificate chain and its own private key "
            "(`centrex tls selfsigned CERT KEY` makes a pair for testing)"
        ) from None


@config.command("show")
@CONFIG_OPTION
def config_show(config_path: Path | None) -> None:
    """Print the settings in effect (passwords masked)."""
    from centrex.config.template import render_settings

    click.echo(render_settings(_load(config_path)), nl=False)


# -- registrations -----------------------------------------------------------------------


@main.command()
@CONFIG_OPTION
def registrations(config_path: Path | None) -> None:
    """List the current bindings: from the server's recovery file, or from the
    shared database when registrar.store = "database".

    The file is as fresh as its last flush (see registrar.recovery_every_seconds).
    """
    import time

    from centrex.registrar.recovery import FILE_NAME, RecoveryFileError, journal_path, load

    settings = _load(config_path)
    now = time.time()
    if settings.registrar.store == "database":
        import asyncio

        from centrex.registrar.sql import read_bindings

        try:
            bindings = asyncio.run(read_bindings(settings.registrar.database.url, now))
        except Exception as exc:
            from centrex.registrar.store import error_line

            click.echo(
                "cannot read the registration database (registrar.database.url): "
                f"{error_line(exc)}",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{len(bindings)} binding(s), in the database")
    else:
        path = settings.resolve_paths(config_path).data_dir / FILE_NAME
        if not path.exists():
            click.echo(f"no registrations ({path} does not exist yet)")
            return
        try:
            bindings = load(path, now)
        except RecoveryFileError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        journal = journal_path(path)
        mtime = max(path.stat().st_mtime, journal.stat().st_mtime if journal.exists() else 0.0)
        saved = datetime.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{len(bindings)} binding(s), as saved at {saved}")
    rows = [("AOR", "CONTACT", "EXPIRES", "SOURCE", "INSTANCE", "USER-AGENT")]
    for b in sorted(bindings, key=lambda b: (b.aor, b.contact)):
        source = f"{b.source.transport}:{b.source.host}:{b.source.port}"
        remaining = str(b.remaining(now))
        rows.append((b.aor, b.contact, remaining, source, b.server_id, b.user_agent or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]
        )


@main.command()
@CONFIG_OPTION
def subscriptions(config_path: Path | None) -> None:
    """List the current watchers (SUBSCRIBE), from the server's recovery file.

    The file is as fresh as its last save (about once a second while it changes).
    """
    import time

    from centrex.presence import RECOVERY_FILE_NAME
    from centrex.presence.service import load_watchers
    from centrex.registrar.recovery import RecoveryFileError

    settings = _load(config_path)
    data_dir = settings.resolve_paths(config_path).data_dir
    path = data_dir / RECOVERY_FILE_NAME
    from centrex.workers.frames import worker_paths

    if not any(p.exists() for p in worker_paths(path)):
        click.echo(f"no subscriptions ({path} does not exist yet)")
        return
    try:
        watchers = load_watchers(data_dir, time.time())
    except RecoveryFileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"{len(watchers)} subscription(s)")
    rows = [("SUBSCRIBER", "EVENT", "RESOURCE", "EXPIRES", "SOURCE", "CONTACT")]
    for w in watchers:
        rows.append((w.subscriber, w.event, w.resource, str(w.expires_in), w.source, w.contact))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(row[:5])) + "  " + row[5])


# -- users and bans ---------------------------------------------------------------------------


def _existing_config(config_path: Path | None) -> tuple[Path, Settings]:
    if config_path is None:
        click.echo("this command edits a settings file: give it with --config FILE", err=True)
        sys.exit(2)
    return config_path, _load(config_path)


def _realm(settings: Settings) -> str:
    return settings.auth.realm or settings.server.effective_domains()[0]


@main.group()
def user() -> None:
    """Add users and set their passwords (stored as digest hashes, never in plain text)."""


@user.command("add")
@click.argument("name")
@click.option("--description", default="", help="Who or what this user is.")
@CONFIG_OPTION
def user_add(name: str, description: str, config_path: Path | None) -> None:
    """Add user NAME to the settings file, prompting for its password."""
    from centrex.auth.credentials import UserFileError, add_user

    path, settings = _existing_config(config_path)
    if settings.is_registrar_name(name):
        click.echo(
            f'{path}: "{name}" is the registrar\'s name (registrar.name): its subscriptions '
            "would reach the server, not this user; choose another name",
            err=True,
        )
        sys.exit(2)
    password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        text = add_user(
            path.read_text(encoding="utf-8"),
            name,
            _realm(settings),
            password,
            description=description,
            case_sensitive=settings.registrar.case_sensitive,
        )
    except UserFileError as exc:
        click.echo(f"{path}: {exc}", err=True)
        sys.exit(2)
    path.write_text(text, encoding="utf-8")
    click.echo(f"added {name} to {path} (realm {_realm(settings)}); send SIGHUP to reload")
    _warn_one_realm(settings, name)


def _warn_one_realm(settings: Settings, name: str) -> None:
    """A hash answers one realm's challenge: with several domains and no
    [auth] realm, each domain is its own realm and the others refuse it."""
    domains = settings.server.effective_domains()
    if settings.auth.realm or len(domains) < 2:
        return
    others = ", ".join(domains[1:])
    click.echo(
        f"warning: the hashes are for realm {domains[0]}, so {name} cannot authenticate "
        f"in {others}; for one realm in every domain set [auth] realm = "
        f'"{domains[0]}" in the settings file',
        err=True,
    )


@user.command("passwd")
@click.argument("name")
@CONFIG_OPTION
def user_passwd(name: str, config_path: Path | None) -> None:
    """Set the password of user NAME, prompting for it."""
    from centrex.auth.credentials import UserFileError, set_password

    path, settings = _existing_config(config_path)
    password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        text = set_password(
            path.read_text(encoding="utf-8"),
            name,
            _realm(settings),
            password,
            case_sensitive=settings.registrar.case_sensitive,
        )
    except UserFileError as exc:
        click.echo(f"{path}: {exc}", err=True)
        sys.exit(2)
    path.write_text(text, encoding="utf-8")
    click.echo(f"password of {name} set in {path}; send SIGHUP to reload")
    _warn_one_realm(settings, name)


@main.group()
def bans() -> None:
    """Addresses banned after repeated authentication failures."""


@bans.command("list")
@CONFIG_OPTION
def bans_list(config_path: Path | None) -> None:
    """The bans in force, as the running server last published them."""
    import time

    from centrex.auth.bans_file import read_bans

    settings = _load(config_path)
    now = time.time()
    current = read_bans(settings.resolve_paths(config_path).data_dir, now)
    if not current:
        click.echo("no bans")
        return
    for ban in current:
        click.echo(f"{ban.ip:<40} {ban.failures:>4} failures  {int(ban.until - now):>6} s left")


@bans.command("clear")
@click.argument("ip", required=False)
@CONFIG_OPTION
def bans_clear(ip: str | None, config_path: Path | None) -> None:
    """Lift the ban of IP (every ban without IP); the server acts within a second."""
    import ipaddress

    from centrex.auth.bans_file import request_clear

    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip))  # (as the server writes it: ::1, not 0::1)
        except ValueError:
            click.echo(f"{ip!r} is not an IP address", err=True)
            sys.exit(2)
    settings = _load(config_path)
    data_dir = settings.resolve_paths(config_path).data_dir
    if not data_dir.is_dir():
        click.echo(
            f"{data_dir}: no such folder: no server has run with these settings "
            "(server.data_dir), so nothing is banned",
            err=True,
        )
        sys.exit(1)
    request_clear(data_dir, ip)
    click.echo(f"asked the server to lift {'the ban of ' + ip if ip else 'every ban'}")


# -- db ------------------------------------------------------------------------------------


def _database_url(config_path: Path | None, url: str | None) -> str:
    if url:
        return url
    settings = _load(config_path)
    if not settings.registrar.database.url:
        click.echo("no database: set registrar.database.url, or pass --url", err=True)
        sys.exit(2)
    return settings.registrar.database.url


URL_OPTION = click.option("--url", default=None, help="Database URL (default: from the settings).")


@main.group()
def db() -> None:
    """The shared registration database (registrar.store = "database")."""


@db.command("init")
@CONFIG_OPTION
@URL_OPTION
def db_init(config_path: Path | None, url: str | None) -> None:
    """Create the schema, or upgrade it to this version of Centrex."""
    from centrex.registrar.sql import init_schema

    target = _database_url(config_path, url)
    try:
        revision = asyncio.run(init_schema(target))
    except Exception as exc:
        click.echo(f"centrex db init: {exc}", err=True)
        sys.exit(1)
    click.echo(f"schema at revision {revision}")


@db.command("check")
@CONFIG_OPTION
@URL_OPTION
def db_check(config_path: Path | None, url: str | None) -> None:
    """Test the connection: server version, schema version, round-trip time, or what is wrong."""
    from centrex.registrar.sql import check_database

    result = asyncio.run(check_database(_database_url(config_path, url)))
    if result.server_version:
        click.echo(f"server      {result.server_version}")
    if result.round_trip_ms is not None:
        click.echo(f"round trip  {result.round_trip_ms:.1f} ms")
    if result.server_version or result.round_trip_ms is not None:
        # (the schema was looked at only once connected: unreached, it says nothing)
        click.echo(
            f"schema      {result.schema_revision or 'none'} (expected {result.expected_revision})"
        )
    if not result.ok:
        click.echo(f"problem: {result.problem}", err=True)
        sys.exit(1)
    now = time.time()
    for instance in result.instances:
        state = (
            "stopped"
            if instance.heartbeat_at == 0
            else f"heartbeat {max(0.0, now - instance.heartbeat_at):.1f} s ago"
        )
        click.echo(f"instance    {instance.server_id} at {instance.address or '?'}: {state}")
    click.echo("OK")


# -- tls -------------------------------------------------------------------------------------


@main.group()
def tls() -> None:
    """TLS helpers."""


@tls.command("selfsigned")
@click.argument("certificate", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="localhost", show_default=True, help="Name in the certificate.")
@click.option(
    "--days",
    default=365,
    show_default=True,
    type=click.IntRange(min=1),
    help="Validity in days.",
)
@click.option("--force", is_flag=True, help="Overwrite CERTIFICATE and KEY if they exist.")
def tls_selfsigned(certificate: Path, key: Path, host: str, days: int, force: bool) -> None:
    """Write a self-signed development CERTIFICATE and its private KEY (PEM)."""
    from centrex.transport.selfsigned import make_self_signed

    for path in (certificate, key):
        if path.exists() and not force:
            click.echo(f"{path}: exists; use --force to overwrite it", err=True)
            sys.exit(2)
        if not path.parent.is_dir():
            click.echo(f"{path}: no folder {path.parent}; create it first", err=True)
            sys.exit(2)
    make_self_signed(certificate, key, host, days=days)
    click.echo(f"wrote {certificate} and {key} for {host}, valid {days} days")


# -- parse -------------------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--stream", is_flag=True, help="Apply TCP/TLS framing rules instead of UDP's.")
def parse(file: BinaryIO, stream: bool) -> None:
    """Parse one SIP message from FILE (or standard input) and show what Centrex reads.

    Exits 0 for a valid message; 1 with the status Centrex would answer (or
    "dropped") for a malformed one.
    """
    data = file.read()
    if b"\r\n" not in data and b"\n" in data:
        data = data.replace(b"\n", b"\r\n")
    try:
        message = parse_message(data, stream=stream, validate=False)
        if isinstance(message, Request):
            validate_request(message)
        else:
            validate_response(message)
    except ParseError as exc:
        answer = "dropped (no answer)" if exc.drop else f"answered {exc.status} {exc.reason}"
        click.echo(f"malformed: {exc.reason}: {answer}")
        sys.exit(1)
    if isinstance(message, Request):
        click.echo(f"request   {message.method} {message.uri}")
    else:
        click.echo(f"response  {message.status} {message.reason}")
    click.echo(f"call-id   {message.call_id}")
    click.echo(f"cseq      {message.cseq}")
    click.echo(f"from      {message.from_addr}")
    click.echo(f"to        {message.to_addr}")
    for via in message.vias:
        click.echo(f"via       {via}")
    for contact in message.contacts:
        click.echo(f"contact   {contact}")
    click.echo(f"body      {len(message.body)} bytes")
    click.echo("headers:")
    for name, value in message.header_items():
        click.echo(f"  {name}: {value}")


if __name__ == "__main__":
    main()

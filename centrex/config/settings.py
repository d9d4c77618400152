"""The settings of the Centrex server: one pydantic model per table of the TOML file.

Every field has a default, so an empty file (or no file) is a working server,
and a one-line description, which ``centrex config init`` writes above the key.
Unknown keys are errors, so a misspelt key never silently does nothing. Types
are strict: ``record_route = "no"`` or ``min_expires = "60"`` is an error, not
a guess.

Relative paths: ``server.data_dir`` and the TLS files are relative to the
folder of the configuration file (the current folder without one); the log
files are relative to the data directory.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from centrex.config.addresses import ListenAddress, check_host, parse_host_port
from centrex.config.auth_settings import AuthSettings
from centrex.config.database_settings import DatabaseSettings
from centrex.config.errors import SettingProblem

_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_USER_CHARACTERS = frozenset(_ALPHANUMERIC + "._+-")
_INSTANCE_CHARACTERS = frozenset(_ALPHANUMERIC + "._-")


def host_name() -> str:
    """The machine's host name, lower-cased: the default domain and instance id."""
    return socket.gethostname().lower()


def resolve_path(value: str, base: Path) -> Path:
    """``value`` as an absolute path; a relative one is taken from ``base``."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def config_folder(config_path: str | Path | None) -> Path:
    """The folder relative paths in a configuration file start from."""
    if config_path is None:
        return Path.cwd()
    return Path(config_path).expanduser().resolve().parent


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters such as line breaks")
    return value


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _domain(value: str) -> str:
    # As a request's host is compared: in lower case, without a trailing dot.
    return check_host(value).lower().rstrip(".")


def _listen_address(value: str) -> str:
    # Stored in its normal form ("UDP:..." becomes "udp:...").
    return str(ListenAddress.parse(value))


def _admin_listen(value: str) -> str:
    parse_host_port(value)
    return value


def _advertised_address(value: str) -> str:
    return check_host(value, allow_bare_ipv6=True) if value else value


def _instance_id(value: str) -> str:
    if not set(value) <= _INSTANCE_CHARACTERS or len(value) > 64:
        raise ValueError("must be up to 64 letters, digits, '.', '_' or '-'; empty = host name")
    return value


def _user_part(value: str) -> str:
    if not value or not set(value) <= _USER_CHARACTERS:
        raise ValueError(
            "must be a SIP user name made of letters, digits, '.', '_', '+' or '-', "
            'e.g. "1001" or "alice"'
        )
    return value


Domain = Annotated[str, AfterValidator(_domain)]
ListenText = Annotated[str, AfterValidator(_listen_address)]
Text = Annotated[str, AfterValidator(_no_control_characters)]
NonEmptyText = Annotated[str, AfterValidator(_no_control_characters), AfterValidator(_not_empty)]


LogLevel = Literal["debug", "info", "warning", "error"]


def _event_name(value: str) -> str:
    if not value or not set(value) <= _TOKEN_CHARACTERS or value in ("reg", "presence"):
        raise ValueError(
            'must be a SIP token other than "reg" and "presence", e.g. "user-available"'
        )
    return value


_TOKEN_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
EventName = Annotated[str, AfterValidator(_event_name)]


class _Table(BaseModel):
    """One table of the file: unknown keys are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class ServerSettings(_Table):
    """Who this server is."""

    domains: list[Domain] = Field(
        default_factory=list,
        description="SIP domains this server is responsible for; empty = the machine's host name",
    )
    instance_id: Annotated[str, AfterValidator(_instance_id)] = Field(
        default="",
        description="name of this proxy in a shared registration database; empty = host name",
    )
    data_dir: NonEmptyText = Field(
        default="./data",
        description="folder for the recovery file and logs, relative to this file's folder",
    )
    user_agent: Text = Field(
        default="Centrex", description="value of the User-Agent and Server headers"
    )
    record_route: bool = Field(
        default=True, description="add Record-Route so in-dialog requests pass this proxy"
    )
    allow_relay: bool = Field(
        default=False, description="forward requests for domains this server does not serve"
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="worker processes sharing the listen ports (SO_REUSEPORT); 1 = one "
        "process; more needs fixed ports and the memory store",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description='"uvloop" (faster), "asyncio" (the standard one), or "auto" = uvloop '
        "when installed",
    )

    @model_validator(mode="after")
    def _unique_domains(self) -> ServerSettings:
        seen: set[str] = set()
        for index, domain in enumerate(self.domains):
            if domain in seen:
                raise SettingProblem(
                    ("domains", index), domain, "is listed twice", "Remove the duplicate."
                )
            seen.add(domain)
        return self

    def effective_domains(self) -> list[str]:
        """The configured domains, or the machine's host name when none are."""
        return list(self.domains) if self.domains else [host_name()]

    def effective_instance_id(self) -> str:
        """The configured instance id, or the machine's host name."""
        return self.instance_id or host_name()

    def resolve_data_dir(self, config_path: str | Path | None) -> Path:
        """The data directory as an absolute path (relative to the config file's folder)."""
        return resolve_path(self.data_dir, config_folder(config_path))


class NetworkSettings(_Table):
    """Where the server listens and how much it accepts from a peer."""

    listen: list[ListenText] = Field(
        default_factory=lambda: ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"],
        description='sockets to listen on, "transport:host:port" with transport '
        'udp, tcp, tls, ws or wss; IPv6 as "udp:[::]:5060"',
    )
    advertised_address: Annotated[str, AfterValidator(_advertised_address)] = Field(
        default="",
        description="address put in Via and Record-Route when listening on 0.0.0.0 or [::]; "
        "empty = detect",
    )
    tls_certificate: Text = Field(
        default="",
        description="PEM certificate chain for tls and wss, relative to this file's folder",
    )
    tls_private_key: Text = Field(
        default="",
        description="PEM private key for tls and wss, relative to this file's folder",
    )
    tcp_idle_timeout_s: int = Field(
        default=7500,
        ge=1,
        description=(
            "close a TCP, TLS or WebSocket connection idle this long; keep it above "
            "registrar.max_expires, since closing a connection removes its registrations"
        ),
    )
    max_connections_per_address: int = Field(
        default=32, ge=1, description="most connections one remote IP address may hold open"
    )
    max_buffer_bytes_per_connection: int = Field(
        default=65536, ge=1024, description="most unparsed bytes buffered for one connection"
    )
    max_message_bytes: int = Field(
        default=65536,
        ge=1024,
        description=(
            "largest body of a SIP message, and largest header block up to 16384 bytes "
            "and 256 header lines; a request over either gets 413 (body) or 513 "
            "(headers), and a TCP/TLS connection that sent it is closed"
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> NetworkSettings:
        if not self.listen:
            raise SettingProblem(
                ("listen",),
                self.listen,
                "needs at least one address",
                'Add one, e.g. listen = ["udp:0.0.0.0:5060"], or remove the key.',
            )
        seen: set[ListenAddress] = set()
        streams: dict[tuple[str, int], ListenAddress] = {}
        for index, address in enumerate(self.listen_addresses()):
            if address in seen:
                raise SettingProblem(
                    ("listen", index), str(address), "is listed twice", "Remove the duplicate."
                )
            seen.add(address)
            if address.transport != "udp":
                # tcp, tls, ws and wss are all TCP sockets: one port each.
                socket_key = (address.host.lower(), address.port)
                other = streams.get(socket_key)
                if other is not None and address.port != 0:
                    raise SettingProblem(
                        ("listen", index),
                        str(address),
                        f"takes the TCP port of {other}",
                        "Give each of tcp, tls, ws and wss its own port "
                        "(by custom 5060, 5061, 8080, 8443).",
                    )
                streams[socket_key] = address
        if any(address.is_secure for address in seen):
            for key in ("tls_certificate", "tls_private_key"):
                if not getattr(self, key):
                    raise SettingProblem(
                        (key,),
                        "",
                        "is needed because network.listen has a tls or wss address",
                        f"Set network.{key} to a PEM file, or remove the tls and wss "
                        "addresses from network.listen.",
                    )
        if self.max_buffer_bytes_per_connection < self.max_message_bytes:
            raise SettingProblem(
                ("max_buffer_bytes_per_connection",),
                self.max_buffer_bytes_per_connection,
                f"must be at least max_message_bytes ({self.max_message_bytes}) "
                "so that a whole message fits",
            )
        return self

    def listen_addresses(self) -> list[ListenAddress]:
        """``listen`` parsed, in the order written."""
        return [ListenAddress.parse(text) for text in self.listen]


class RegistrarSettings(_Table):
    """REGISTER handling and the location service (RFC 3261 10)."""

    name: Annotated[str, AfterValidator(_user_part)] = Field(
        default="Registrar",
        description="user part of the registrar's address sip:<name>@<domain> (presence events)",
    )
    case_sensitive: bool = Field(
        default=False, description='treat user names differing in case ("Alice", "alice") as two'
    )
    default_expires: int = Field(
        default=3600, ge=1, description="registration lifetime when the phone asks for none"
    )
    min_expires: int = Field(
        default=60, ge=1, description="shorter requested lifetimes get 423 Interval Too Brief"
    )
    max_expires: int = Field(
        default=7200, ge=1, description="longer requested lifetimes are cut to this"
    )
    max_contacts: int = Field(
        default=10, ge=1, description="most contacts (devices) registered for one user"
    )
    max_contacts_policy: Literal["reject", "evict_oldest"] = Field(
        default="evict_oldest",
        description=(
            'past max_contacts: "reject" the REGISTER or "evict_oldest" contact '
            "(a REGISTER that alone carries more than max_contacts is refused either way)"
        ),
    )
    store: Literal["memory", "database"] = Field(
        default="memory",
        description='"memory" (with a recovery file in data_dir) or "database" (shared)',
    )
    related_domains: list[Domain] = Field(
        default_factory=list,
        description=(
            "domains sharing one set of users: a call to 1236 at one of them reaches "
            "1236 registered at any of them (served here or by another instance)"
        ),
    )
    recovery_every_registrations: int = Field(
        default=100,
        ge=1,
        description=(
            "write the recovery file after this many changes (a machine crash may lose 2 s more)"
        ),
    )
    recovery_every_seconds: int = Field(
        default=10, ge=1, description="write the recovery file at least this often when changed"
    )
    purge_expired: bool = Field(
        default=True, description="remove expired registrations periodically"
    )
    purge_interval_s: int = Field(
        default=30, ge=1, description="how often expired registrations are removed"
    )
    remove_on_connection_close: bool = Field(
        default=True, description="drop a contact when the TCP/TLS/WS connection it used closes"
    )
    allow_unknown_users: bool = Field(
        default=False, description="accept registrations for users not listed in [[users]]"
    )
    database: DatabaseSettings = Field(
        default_factory=DatabaseSettings,
        description='The shared registration database, used when store = "database".',
    )
    presence_events: bool = Field(
        default=True,
        description="answer SUBSCRIBE sip:<name>@<domain> with who is registered (issue 4)",
    )
    event_available: EventName = Field(
        default="user-available", description="Event package listing users who are registered"
    )
    event_unavailable: EventName = Field(
        default="user-unavailable", description="Event package listing users who are not"
    )
    presence_compat: Literal["", "lanscape"] = Field(
        default="",
        description='NOTIFY form: "" = in the dialog (RFC 6665); "lanscape" = original phones',
    )
    presence_standard_packages: bool = Field(
        default=True, description="also serve the reg (RFC 3680) and presence (RFC 3856) packages"
    )
    notify_max_bytes: int = Field(
        default=1300,
        ge=560,
        description="split user lists so each NOTIFY stays this small (at least 560)",
    )
    notify_failures_before_drop: int = Field(
        default=3, ge=1, description="failed NOTIFYs in a row that end a subscription"
    )
    notify_min_interval_ms: int = Field(
        default=1000,
        ge=0,
        le=60000,
        description="changes within this time of a subscriber's last change NOTIFY are merged "
        "into one (0 = each change at once)",
    )
    subscribe_min_expires: int = Field(
        default=60, ge=1, description="shorter SUBSCRIBE lifetimes get 423"
    )
    subscribe_default_expires: int = Field(
        default=3600, ge=1, description="SUBSCRIBE lifetime when none is asked"
    )
    subscribe_max_expires: int = Field(
        default=7200, ge=1, description="longer SUBSCRIBE lifetimes are cut to this"
    )

    @model_validator(mode="after")
    def _expires_in_order(self) -> RegistrarSettings:
        if self.min_expires > self.max_expires:
            raise SettingProblem(
                ("min_expires",),
                self.min_expires,
                f"must not be more than max_expires ({self.max_expires} seconds)",
            )
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise SettingProblem(
                ("default_expires",),
                self.default_expires,
                f"must be between min_expires and max_expires "
                f"({self.min_expires} to {self.max_expires} seconds)",
            )
        return self

    @model_validator(mode="after")
    def _presence_in_order(self) -> RegistrarSettings:
        if self.event_available == self.event_unavailable:
            raise SettingProblem(
                ("event_unavailable",), self.event_unavailable, "must differ from event_available"
            )
        low, default, high = (
            self.subscribe_min_expires,
            self.subscribe_default_expires,
            self.subscribe_max_expires,
        )
        if not low <= default <= high:
            raise SettingProblem(
                ("subscribe_default_expires",),
                default,
                "must be between subscribe_min_expires and subscribe_max_expires "
                f"({low} to {high})",
            )
        return self


class TimeoutSettings(_Table):
    """Transaction timers (RFC 3261 17 and Table 4); change them only for odd networks."""

    t1_ms: int = Field(
        default=500, ge=1, description="T1: round-trip time estimate, first retransmit interval"
    )
    t2_ms: int = Field(
        default=4000,
        ge=1,
        description="T2: longest retransmit interval of non-INVITE requests and INVITE responses",
    )
    t4_ms: int = Field(
        default=5000, ge=1, description="T4: longest time a message stays in the network"
    )
    transaction_s: int = Field(
        default=32, ge=1, description="Timer B and F: wait for a final response (RFC: 64*T1)"
    )
    ringing_s: int = Field(
        default=180,
        ge=1,
        description=(
            "Timer C: longest a proxied INVITE branch may go without a provisional "
            "response; each one but 100 (180, 183) restarts it (RFC 3261 16.7); then the "
            "branch is cancelled and counts as 408"
        ),
    )

    @model_validator(mode="after")
    def _t2_not_below_t1(self) -> TimeoutSettings:
        if self.t2_ms < self.t1_ms:
            raise SettingProblem(
                ("t2_ms",), self.t2_ms, f"must be at least t1_ms ({self.t1_ms} milliseconds)"
            )
        return self

    def timer_config(self) -> dict[str, float]:
        """The timers in seconds, keyed like ``centrex.transaction.TimerConfig``'s fields."""
        return {
            "t1": self.t1_ms / 1000,
            "t2": self.t2_ms / 1000,
            "t4": self.t4_ms / 1000,
            "timer_b": float(self.transaction_s),
            "timer_f": float(self.transaction_s),
            "timer_c": float(self.ringing_s),
        }


class LoggingSettings(_Table):
    """The event log and the SIP trace."""

    level: Annotated[LogLevel, BeforeValidator(_lower)] = Field(
        default="info", description="least severe level that is logged"
    )
    format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field(
        default="text", description='"text" for people, "json" for log collectors'
    )
    file: Text = Field(
        default="", description="log file, relative to server.data_dir; empty = stderr only"
    )
    max_bytes: int = Field(
        default=10_000_000, ge=0, description="rotate the log file at this size; 0 = never"
    )
    backup_count: int = Field(default=5, ge=0, description="rotated log files to keep")
    sip_trace: bool = Field(default=False, description="write every SIP message sent and received")
    sip_trace_file: NonEmptyText = Field(
        default="sip-trace.log", description="SIP trace file, relative to server.data_dir"
    )


class AdminSettings(_Table):
    """The web admin and REST API."""

    listen: Annotated[str, AfterValidator(_admin_listen)] = Field(
        default="127.0.0.1:8080", description='address of the web admin, "host:port"'
    )
    enabled: bool = Field(default=True, description="serve the web admin and REST API")

    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); an IPv6 host is without brackets."""
        return parse_host_port(self.listen)


class User(_Table):
    """One user (account) of the registrar."""

    user: Annotated[str, AfterValidator(_user_part)] = Field(
        description='user part of the address, e.g. "1001" in sip:1001@example.com'
    )
    description: Text = Field(default="", description="free text: who or what this user is")
    password: Text = Field(
        default="",
        description="digest authentication password, stored in plain text",
        json_schema_extra={"secret": True},
    )
    enabled: bool = Field(default=True, description="false refuses this user without deleting it")
    realm: Text = Field(default="", description="realm the ha1_* hashes were made for")
    ha1_md5: Text = Field(
        default="",
        description="MD5 digest hash of user:realm:password (`centrex user passwd` writes it)",
        json_schema_extra={"secret": True},
    )
    ha1_sha256: Text = Field(
        default="",
        description="SHA-256 digest hash of user:realm:password",
        json_schema_extra={"secret": True},
    )


@dataclass(frozen=True, slots=True)
class ResolvedPaths:
    """The files and folders of the settings, as absolute paths."""

    data_dir: Path
    log_file: Path | None
    sip_trace_file: Path
    tls_certificate: Path | None
    tls_private_key: Path | None


class Settings(_Table):
    """The whole configuration file; every table may be left out."""

    server: ServerSettings = Field(
        default_factory=ServerSettings, description="Who this server is."
    )
    network: NetworkSettings = Field(
        default_factory=NetworkSettings,
        description="Where the server listens and how much it accepts from one peer.",
    )
    registrar: RegistrarSettings = Field(
        default_factory=RegistrarSettings,
        description="REGISTER handling and the location service (RFC 3261 section 10).",
    )
    timeouts: TimeoutSettings = Field(
        default_factory=TimeoutSettings,
        description="Transaction timers (RFC 3261 section 17); the defaults suit most networks.",
    )
    logging: LoggingSettings = Field(
        default_factory=LoggingSettings, description="The event log and the SIP trace."
    )
    admin: AdminSettings = Field(
        default_factory=AdminSettings, description="The web admin and REST API."
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings,
        description="Digest authentication and protection against scanning and guessing.",
    )
    users: list[User] = Field(
        default_factory=list,
        description="The users of the registrar, one [[users]] table each.",
    )

    @model_validator(mode="after")
    def _unique_users(self) -> Settings:
        case_sensitive = self.registrar.case_sensitive
        first: dict[str, int] = {}
        for index, entry in enumerate(self.users):
            if self.is_registrar_name(entry.user):
                raise SettingProblem(
                    ("users", index, "user"),
                    entry.user,
                    f'is the registrar\'s name (registrar.name = "{self.registrar.name}"): its '
                    "subscriptions and OPTIONS would reach the server, not this user",
                    "Rename the user, or set registrar.name to a name no user has.",
                )
            key = entry.user if case_sensitive else entry.user.lower()
            if key in first:
                other = first[key]
                expected = f'is already used by users[{other}] ("{self.users[other].user}")'
                if entry.user != self.users[other].user:
                    expected += (
                        "; user names are compared ignoring case"
                        " unless registrar.case_sensitive = true"
                    )
                raise SettingProblem(
                    ("users", index, "user"),
                    entry.user,
                    expected,
                    "Give each user a different name.",
                )
            first[key] = index
        return self

    def is_registrar_name(self, name: str) -> bool:
        """True when a user called ``name`` would lose its subscriptions to
        the registrar's (its URI is matched in any case) while presence
        events are on."""
        registrar = self.registrar
        return registrar.presence_events and name.lower() == registrar.name.lower()

    def find_user(self, name: str) -> User | None:
        """The user entry called ``name``, compared as ``registrar.case_sensitive`` says."""
        if self.registrar.case_sensitive:
            return next((u for u in self.users if u.user == name), None)
        folded = name.lower()
        return next((u for u in self.users if u.user.lower() == folded), None)

    def resolve_paths(self, config_path: str | Path | None) -> ResolvedPaths:
        """Every path setting made absolute, for a file loaded from ``config_path``."""
        folder = config_folder(config_path)
        data_dir = self.server.resolve_data_dir(config_path)
        network, logging = self.network, self.logging
        return ResolvedPaths(
            data_dir=data_dir,
            log_file=resolve_path(logging.file, data_dir) if logging.file else None,
            sip_trace_file=resolve_path(logging.sip_trace_file, data_dir),
            tls_certificate=(
                resolve_path(network.tls_certificate, folder) if network.tls_certificate else None
            ),
            tls_private_key=(
                resolve_path(network.tls_private_key, folder) if network.tls_private_key else None
            ),
        )


__all__ = [
    "AdminSettings",
    "ListenAddress",
    "LoggingSettings",
    "NetworkSettings",
    "RegistrarSettings",
    "ResolvedPaths",
    "ServerSettings",
    "Settings",
    "TimeoutSettings",
    "User",
    "config_folder",
    "host_name",
    "resolve_path",
]

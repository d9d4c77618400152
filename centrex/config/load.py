"""Reading and checking the configuration file.

Every problem becomes one line that names the file, the key, the value and
what is expected, e.g.::

    centrex.toml: registrar.min_expires = -5: must be at least 1 (seconds).
    Fix the value or remove the key to use the default 60.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import stat
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from centrex.config.errors import ConfigError, SettingProblem, format_key
from centrex.config.settings import Settings

Loc = tuple[str | int, ...]

_TOML_POSITION = re.compile(
    r"^(?P<what>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|"
    r"(?P<end>end of document))\)$"
)
_MAX_VALUE_CHARS = 60


def load_settings(path: str | Path | None) -> Settings:
    """The settings in the TOML file at ``path``; ``None`` gives the embedded defaults.

    Raises ``ConfigError`` for an unreadable file, a TOML syntax error or a
    setting that does not validate, listing every problem found.
    """
    if path is None:
        return Settings()
    source = str(path)
    try:
        raw = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"{source}: no such file (create one with `centrex config init`)"], source
        ) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError([f"{source}: cannot read the file: {reason}"], source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            [f"{source}: line {line}: not UTF-8 text (a TOML file must be saved as UTF-8)"],
            source,
        ) from None
    settings = parse_settings(text, source)
    database = settings.registrar.database
    if database.url:
        database.url = sqlite_url_in(database.url, Path(path).expanduser().resolve().parent)
    return settings


def sqlite_url_in(url: str, folder: Path) -> str:
    """``url`` with the relative path of a SQLite database made absolute in
    ``folder`` (the settings file's, as for every other path in it), so that
    ``centrex serve`` and ``centrex registrations`` open the same file from
    any working folder. Other URLs as they are."""
    head = "sqlite+aiosqlite:///"
    if not url.startswith(head):
        return url
    rest = url[len(head) :]
    if not rest or rest.startswith(("/", ":memory:", "file:")) or "?" in rest:
        return url  # (absolute, in memory, or a URI form we leave to SQLite)
    return head + str(folder / rest)


def parse_settings(text: str, source: str = "<string>") -> Settings:
    """The settings in TOML ``text``; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(source, text, error)], source) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        problems = [_describe(source, data, details) for details in error.errors()]
        raise ConfigError(problems, source) from None


def check_settings(path: str | Path | None) -> list[str]:
    """Load ``path`` (raising ``ConfigError`` if it is invalid) and return its warnings.

    Warnings are settings that work but are probably not what the operator
    wants: plain-text passwords, an open relay, a public web admin.
    """
    return settings_warnings(load_settings(path), path)


def settings_warnings(settings: Settings, path: str | Path | None = None) -> list[str]:
    """The warnings for ``settings`` loaded from ``path`` (see ``check_settings``)."""
    source = "<defaults>" if path is None else str(path)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(f"{source}: {message}")

    for index, user in enumerate(settings.users):
        if user.password:
            warn(
                f"users[{index}].password is stored in plain text; "
                "keep this file readable by the server's account only"
            )
    if path is not None and any(user.password for user in settings.users):
        mode = _file_mode(path)
        if mode is not None and mode & (stat.S_IRWXG | stat.S_IRWXO):
            warn(
                f"the file holds passwords and other users can read it "
                f"(mode {stat.filemode(mode)}); run chmod 600 on it"
            )
    if settings.auth.enabled:
        for warning in _credential_warnings(settings):
            warn(warning)
    if settings.server.allow_relay:
        warn(
            "server.allow_relay = true: requests for any domain are forwarded, "
            "so anyone can route calls through this server"
        )
    if settings.registrar.allow_unknown_users:
        warn(
            "registrar.allow_unknown_users = true: any user name may register, "
            "not only those listed in [[users]]"
        )
    if settings.admin.enabled and not _is_loopback(settings.admin.address()[0]):
        warn(
            f'admin.listen = "{settings.admin.listen}": the web admin is reachable from '
            "other machines; prefer 127.0.0.1 behind a TLS reverse proxy"
        )
    network, registrar = settings.network, settings.registrar
    if registrar.remove_on_connection_close and network.tcp_idle_timeout_s <= registrar.max_expires:
        warn(
            f"network.tcp_idle_timeout_s = {network.tcp_idle_timeout_s} is not above "
            f"registrar.max_expires = {registrar.max_expires}: a phone on TCP that only "
            "re-registers loses its registration when the idle connection is closed"
        )
    if settings.timeouts.ringing_s < 180:
        warn(
            f"timeouts.ringing_s = {settings.timeouts.ringing_s}: RFC 3261 16.6 wants "
            "Timer C above 3 minutes; a branch silent longer (no provisional response "
            "since the last) is cancelled"
        )
    paths = settings.resolve_paths(path)
    for key, file in (
        ("tls_certificate", paths.tls_certificate),
        ("tls_private_key", paths.tls_private_key),
    ):
        if file is not None and not file.is_file():
            value = getattr(settings.network, key)
            warn(f'network.{key} = "{value}": no such file (looked for {file})')
    return warnings


# -- problem descriptions ------------------------------------------------------


def _syntax_problem(source: str, text: str, error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"{source}: invalid TOML: {message}"
    what = match["what"]
    what = what[:1].lower() + what[1:]
    if match["end"]:
        return f"{source}: end of file: invalid TOML: {what}"
    line = int(match["line"])
    lines = text.splitlines()
    quoted = f"\n    {lines[line - 1].strip()}" if 0 < line <= len(lines) else ""
    return f"{source}: line {line}, column {match['col']}: invalid TOML: {what}{quoted}"


def _describe(source: str, data: dict[str, Any], details: ErrorDetails) -> str:
    loc: Loc = tuple(details["loc"])
    kind = details["type"]
    ctx = details.get("ctx") or {}
    problem = ctx.get("error")
    value: object = details.get("input")
    if isinstance(problem, SettingProblem):
        loc = loc + problem.loc
        value = problem.value
    key = format_key(loc)
    if kind == "extra_forbidden":
        return f"{source}: {key}: {_unknown_key(loc, value)}"
    if kind == "missing":
        return f"{source}: {key}: missing; {_required_hint(loc)}"
    field = _field_at(loc)
    present = _in_file(data, loc)
    shown = f"{key} = {_toml(value)}" + ("" if present else " (default)")
    if isinstance(problem, SettingProblem):
        expected = problem.expected
    elif isinstance(problem, Exception):
        expected = str(problem)
    else:
        expected = _expected(kind, ctx, details["msg"], loc, field)
    if isinstance(problem, SettingProblem) and problem.fix:
        fix = problem.fix
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        fix = "Write it as a table, or remove it to use the defaults."
    elif loc and isinstance(loc[-1], int):
        fix = "Fix or remove this entry."
    elif not present:
        fix = f"Set {key} in the file, or change the setting it is checked against."
    elif field is not None and not field.is_required():
        default = field.get_default(call_default_factory=True)
        fix = f"Fix the value or remove the key to use the default {_toml(default)}."
    else:
        fix = "Fix the value."
    return f"{source}: {shown}: {expected.rstrip('.')}. {fix}"


def _expected(
    kind: str, ctx: dict[str, Any], message: str, loc: Loc, field: FieldInfo | None
) -> str:
    unit = _unit(loc)
    suffix = f" ({unit})" if unit else ""
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}{suffix}"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}{suffix}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}{suffix}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}{suffix}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number without quotes{suffix}"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false (without quotes)"
    if kind in ("string_type", "string_sub_type"):
        return "must be text in double quotes"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}"
    if kind == "list_type":
        if loc == ("users",):
            return "must be [[users]] tables"
        return 'must be a list in brackets, e.g. ["a", "b"]'
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if len(loc) == 2 and loc[0] == "users":
            return "must be a [[users]] table"
        return f"must be a table, written [{format_key(loc)}]"
    if kind == "literal_error":
        choices = _literal_choices(field)
        if choices:
            return "must be one of " + ", ".join(choices)
        return f"must be one of {ctx.get('expected', '')}"
    text = message.removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


def _required_hint(loc: Loc) -> str:
    if loc[:1] == ("users",):
        return 'every [[users]] entry needs one, e.g. user = "1001".'
    return "add this key."


def _unknown_key(loc: Loc, value: object) -> str:
    parent, name = loc[:-1], str(loc[-1])
    model = _model_at(parent)
    candidates = list(model.model_fields) if model is not None else []
    prefix = format_key(parent) + "." if parent else ""
    what = "unknown table" if not parent and isinstance(value, dict) else "unknown setting"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"{what} (did you mean {prefix}{close[0]}?)"
    elsewhere = _tables_with(name)
    if elsewhere:
        return f"{what} (did you mean {elsewhere[0]}.{name}? it belongs in [{elsewhere[0]}])"
    if not parent:
        return f"{what}; the tables are {', '.join(candidates)}"
    return f"{what}; the settings of [{format_key(parent)}] are {', '.join(candidates)}"


def _tables_with(name: str) -> list[str]:
    tables = []
    for table, info in Settings.model_fields.items():
        model = _model_of(info)
        if model is not None and name in model.model_fields:
            tables.append(table)
    return tables


def _unit(loc: Loc) -> str:
    name = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if name.endswith("_per_s"):
        return "per second"
    if name.endswith("_ms"):
        return "milliseconds"
    if name.endswith(("_s", "_seconds", "expires")):
        return "seconds"
    if name.endswith("bytes"):
        return "bytes"
    return ""


def _literal_choices(field: FieldInfo | None) -> list[str]:
    if field is None or get_origin(field.annotation) is not Literal:
        return []
    return [_toml(choice) for choice in get_args(field.annotation)]


# -- walking the model and the data --------------------------------------------


def _model_of(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model of the table at ``loc`` (``()`` is the whole file)."""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_of(model.model_fields[part])
    return model


def _field_at(loc: Loc) -> FieldInfo | None:
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return None
    parent_names = tuple(names[:-1])
    model = _model_at(parent_names)
    return None if model is None else model.model_fields.get(names[-1])


def _in_file(data: object, loc: Loc) -> bool:
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return False
        elif not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _toml(value: object) -> str:
    """``value`` as it would be written in TOML, shortened for a message."""
    text = _toml_full(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


def _toml_full(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = "".join(c if ord(c) >= 32 else f"\\u{ord(c):04x}" for c in escaped)
        return f'"{escaped}"'
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_full(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ", ".join(f"{key} = {_toml_full(item)}" for key, item in value.items())
        return "{ " + items + " }"
    if isinstance(value, BaseModel):
        return _toml_full(value.model_dump())
    return repr(value)


def _file_mode(path: str | Path) -> int | None:
    if os.name != "posix":
        return None
    try:
        return Path(path).expanduser().stat().st_mode
    except OSError:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credential_warnings(settings: Settings) -> list[str]:
    """What the server would log about ``[[users]]`` at start (hashes it
    ignores, a realm it never challenges in), and users who can never log in."""
    from centrex.auth.credentials import Credentials

    realms = [settings.auth.realm] if settings.auth.realm else settings.server.effective_domains()
    # (plain-text passwords are warned about above, auth on or off)
    _, warnings = Credentials.from_users(settings.users, realms, warn_plain=False)
    for index, user in enumerate(settings.users):
        if user.enabled and not (user.password or user.ha1_md5 or user.ha1_sha256):
            warnings.append(
                f"users[{index}] ({user.user}): no password and no hashes, so it can never "
                f"authenticate; run `centrex user passwd {user.user}`"
            )
    return warnings

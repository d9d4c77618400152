"""The event log: what the server does, for people (text) and log collectors (JSON).

Every module logs to a logger of the ``centrex`` tree (``logging.getLogger(__name__)``);
:func:`setup_event_log` gives that tree its handlers: standard error always, and a
rotating file when one is configured.

Text lines::

    2026-11-30 05:25:01.123 INFO centrex.registrar: registered aor=sip:1001@example.com

JSON lines (one object per line)::

    {"ts": "2026-11-30T05:25:01.123+01:00", "level": "INFO", "logger": "centrex.registrar",
     "msg": "registered", "aor": "sip:1001@example.com"}

Times are local time; the JSON ``ts`` carries the UTC offset so collectors need no guess.

The level is set on the ``centrex`` logger itself, so a call below it stops at
``Logger.isEnabledFor`` (a cached dictionary look-up): nothing is formatted and no
record is made. Keep it that way on the hot path: pass arguments (``log.debug("%s",
x)``) or use :func:`event`, never pre-format with f-strings.

The tree does not propagate to the root logger: its output is its own, so a library
that calls ``logging.basicConfig`` does not make every line appear twice.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Final, TextIO

from centrex.config.settings import LoggingSettings

ROOT_LOGGER: Final = "centrex"

LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# The JSON keys every line has; an extra field of the same name is renamed "<name>_".
_CORE_KEYS: Final = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class _Event:
    """The message of an :func:`event` record, rendered only if a handler emits it."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: dict[str, object]) -> None:
        self.name = name
        self.fields = fields

    def __str__(self) -> str:
        return self.name + _render_fields(self.fields.items())


def event(
    logger: logging.Logger, name: str, /, *, level: int = logging.INFO, **fields: object
) -> None:
    """Log the structured event ``name`` with ``fields`` (at INFO unless ``level`` says).

    ``event(log, "registered", aor=aor, contact=contact)`` reads
    ``registered aor=... contact=...`` in the text log and is
    ``{"msg": "registered", "aor": ..., "contact": ...}`` in the JSON log. Nothing
    is rendered when ``level`` is off.
    """
    if logger.isEnabledFor(level):
        # stacklevel=2: the record names the caller of event(), not this function.
        logger.log(level, _Event(name, fields), stacklevel=2)


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    # Quote what would make the line ambiguous or break it (spaces, "=", quotes,
    # line breaks): one event stays one line whatever a peer put in a header.
    if not text or any(c <= " " or c in '"=\\' or c == "\x7f" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _render_fields(items: Iterable[tuple[str, object]]) -> str:
    return "".join(f" {key}={_text_value(value)}" for key, value in items)


def _record_extras(record: logging.LogRecord) -> Iterator[tuple[str, object]]:
    """The attributes a logging call's ``extra`` put on ``record``."""
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRIBUTES:
            yield key, value


def _timestamp(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created).astimezone()


class TextFormatter(logging.Formatter):
    """``2026-11-30 05:25:01.123 INFO centrex.registrar: message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _timestamp(record)
        # An event's fields are already in its message; only ``extra`` is added here.
        line = (
            f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d} {record.levelname} "
            f"{record.name}: {record.getMessage()}{_render_fields(_record_extras(record))}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the event and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: Iterable[tuple[str, object]] = _record_extras(record)
        if isinstance(record.msg, _Event):
            message = record.msg.name
            fields = itertools.chain(record.msg.fields.items(), fields)
        else:
            message = record.getMessage()
        line: dict[str, object] = {
            "ts": _timestamp(record).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
        }
        for key, value in fields:
            line[f"{key}_" if key in _CORE_KEYS else key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (so redirection and tests work)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _RotatingFileHandler(RotatingFileHandler):
    """``RotatingFileHandler`` where ``backup_count = 0`` means "start the file over".

    The standard handler never rotates without backups, so the file would grow past
    ``max_bytes`` and be reopened on every record.
    """

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        # A record longer than max_bytes goes into an empty file rather than
        # rotating an empty file away on every record.
        if self.stream is not None and self.stream.tell() == 0:
            return False
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:
        if self.backupCount > 0:
            super().doRollover()
            return
        if self.stream:
            self.stream.close()
        self.stream = open(  # noqa: SIM115 - the handler owns and closes it
            self.baseFilename, "w", encoding=self.encoding, errors=self.errors
        )


# Marks the handlers setup_event_log added, so a second call replaces them.
_OWNED: Final = "_centrex_event_log"


def _owned_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, _OWNED, False)]


class _WorkerField(logging.Filter):
    """Adds ``worker=N`` to every record of one worker of several."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def setup_event_log(
    settings: LoggingSettings, log_file: Path | None, *, worker: int | None = None
) -> None:
    """Send the ``centrex`` logger tree to stderr and, when ``log_file`` is set, to that file.

    ``log_file`` is the absolute path from ``Settings.resolve_paths`` (None = stderr
    only); it rotates at ``settings.max_bytes`` (0 = never), keeping
    ``settings.backup_count`` old files (``file.1`` newest). Calling again replaces the
    handlers of the previous call (a reload), it never adds a second set.
    ``worker``: the index of this worker of several, added to every record
    (``worker=N``; each worker writes its own file, see ``worker_path``).
    """
    formatter: logging.Formatter = JsonFormatter() if settings.format == "json" else TextFormatter()
    handlers: list[logging.Handler] = [_StderrHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            _RotatingFileHandler(
                os.fspath(log_file),
                maxBytes=settings.max_bytes,
                backupCount=settings.backup_count,
                encoding="utf-8",
            )
        )
    logger = logging.getLogger(ROOT_LOGGER)
    reset_event_log()
    for handler in handlers:
        handler.setFormatter(formatter)
        if worker is not None:
            handler.addFilter(_WorkerField(worker))
        setattr(handler, _OWNED, True)
        logger.addHandler(handler)
    logger.setLevel(LEVELS[settings.level])
    logger.propagate = False


def reset_event_log() -> None:
    """Undo :func:`setup_event_log`: close its handlers and let records reach the root again."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in _owned_handlers(logger):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


__all__ = [
    "LEVELS",
    "ROOT_LOGGER",
    "JsonFormatter",
    "TextFormatter",
    "event",
    "reset_event_log",
    "setup_event_log",
]

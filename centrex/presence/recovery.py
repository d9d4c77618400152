"""The recovery file of the subscriptions, written like the registrations' one.

One JSON document, replaced atomically (``registrar.recovery.write_atomically``)::

    {"format": "centrex-subscriptions", "version": 1, "saved_at": 1700000000.0,
     "fields": ["id", "kind", ...], "subscriptions": [["5e1f...", "available", ...], ...]}

Rows are arrays in the order ``fields`` names and are read by column name.
Each row keeps its dialog, including our NOTIFY CSeq, so NOTIFYs after a
restart continue the dialog the subscriber knows (RFC 3261 12.2.2 answers a
lower CSeq with 500). NOTIFYs built after the last save are lost with the
process, and their CSeqs with them; loading therefore moves every counter on
by ``cseq_gap`` (gaps are harmless, going back is not). So the file need
not be rewritten for every NOTIFY: the service saves it when subscriptions
come, go or are refreshed, and otherwise only once the NOTIFYs built since
the last save reach ``SAVE_AFTER_NOTIFIES`` (half the gap), which keeps any
one dialog's lost CSeqs within the gap. NOTIFYs waiting or in flight at the
crash are not sent again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from centrex.presence.dialog import Subscription
from centrex.registrar.binding import Source
from centrex.registrar.recovery import RecoveryFileError, gc_paused, write_atomically

if TYPE_CHECKING:
    from centrex.presence.subscriptions import SubscriptionTable

FORMAT = "centrex-subscriptions"
VERSION = 1
#: The name of the file in the data directory.
FILE_NAME = "subscriptions.json"
#: How far a restored NOTIFY CSeq jumps ahead (see the module docstring).
CSEQ_RESTART_GAP = 1000
#: NOTIFYs built since the last save that make the file due again (below the gap).
SAVE_AFTER_NOTIFIES = CSEQ_RESTART_GAP // 2

FIELDS: tuple[str, ...] = (
    "id",
    "kind",
    "event",
    "event_id",
    "subscriber",
    "resource",
    "domain",
    "form",
    "call_id",
    "local_tag",
    "remote_tag",
    "local_uri",
    "remote_uri",
    "remote_target",
    "route_set",
    "local_cseq",
    "remote_cseq",
    "expires_at",
    "transport",
    "host",
    "port",
    "local",
    "connection_id",
    "created_at",
    "failures",
    "version",
)
_OPTIONAL: dict[str, Any] = {
    "event_id": None,
    "route_set": [],
    "local": "",
    "connection_id": None,
    "failures": 0,
    "version": 0,
}
_KINDS = frozenset({"available", "unavailable", "reg", "presence"})
_FORMS = frozenset({"rfc6665", "lanscape"})


def _row(sub: Subscription) -> list[Any]:
    src = sub.source
    return [
        sub.id,
        sub.kind,
        sub.event,
        sub.event_id,
        sub.subscriber,
        sub.resource,
        sub.domain,
        sub.form,
        sub.call_id,
        sub.local_tag,
        sub.remote_tag,
        sub.local_uri,
        sub.remote_uri,
        sub.remote_target,
        list(sub.route_set),
        sub.local_cseq,
        sub.remote_cseq,
        sub.expires_at,
        src.transport,
        src.host,
        src.port,
        src.local,
        src.connection_id,
        sub.created_at,
        sub.failures,
        sub.version,
    ]


def encode(subscriptions: Iterable[Subscription], saved_at: float) -> bytes:
    """The recovery file content for ``subscriptions``."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": saved_at,
        "fields": list(FIELDS),
        "subscriptions": [_row(sub) for sub in subscriptions],
    }
    # ASCII output: header values decoded with surrogateescape stay lossless.
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _from_row(row: dict[str, Any], cseq_gap: int) -> Subscription:
    if row["kind"] not in _KINDS or row["form"] not in _FORMS:
        raise ValueError(f"kind {row['kind']!r} or form {row['form']!r}")
    return Subscription(
        id=str(row["id"]),
        kind=row["kind"],
        event=str(row["event"]),
        event_id=row["event_id"],
        subscriber=str(row["subscriber"]),
        resource=str(row["resource"]),
        domain=str(row["domain"]),
        form=row["form"],
        call_id=str(row["call_id"]),
        local_tag=str(row["local_tag"]),
        remote_tag=str(row["remote_tag"]),
        local_uri=str(row["local_uri"]),
        remote_uri=str(row["remote_uri"]),
        remote_target=str(row["remote_target"]),
        route_set=tuple(str(r) for r in row["route_set"]),
        local_cseq=int(row["local_cseq"]) + cseq_gap,
        remote_cseq=int(row["remote_cseq"]),
        expires_at=float(row["expires_at"]),
        source=Source(
            row["transport"], row["host"], int(row["port"]), row["local"], row["connection_id"]
        ),
        created_at=float(row["created_at"]),
        failures=int(row["failures"]),
        version=int(row["version"]),
    )


def decode(
    data: bytes, *, now: float, path: Path | None = None, cseq_gap: int = CSEQ_RESTART_GAP
) -> list[Subscription]:
    """The subscriptions in recovery content ``data`` still live at ``now``."""
    where = path or Path(FILE_NAME)
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RecoveryFileError(where, f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecoveryFileError(where, f"not a {FORMAT} file")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise RecoveryFileError(where, f"version {version!r}; this Centrex reads up to {VERSION}")
    fields = doc.get("fields")
    rows = doc.get("subscriptions")
    if not isinstance(fields, list) or not isinstance(rows, list):
        raise RecoveryFileError(where, "no fields or subscriptions")
    missing = [f for f in FIELDS if f not in fields and f not in _OPTIONAL]
    if missing:
        raise RecoveryFileError(where, f"missing fields {missing}")
    out: list[Subscription] = []
    try:
        for values in rows:
            row = dict(_OPTIONAL)
            row.update(zip(fields, values, strict=True))
            if float(row["expires_at"]) > now:
                out.append(_from_row(row, cseq_gap))
    except (TypeError, ValueError, KeyError) as exc:
        raise RecoveryFileError(where, f"bad subscription ({exc})") from None
    return out


def save(path: Path, table: SubscriptionTable, now: float) -> None:
    """Write ``table``'s subscriptions to ``path`` atomically."""
    with gc_paused():
        data = table.to_json(now)
    write_atomically(path, data)


def load(
    path: Path, table: SubscriptionTable, now: float, *, cseq_gap: int = CSEQ_RESTART_GAP
) -> int:
    """Add the live subscriptions of ``path`` to ``table``; none without a file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    with gc_paused():
        return table.from_json(data, now, path=path, cseq_gap=cseq_gap)

"""Measure the recovery file: size and load time of N bindings (not a test).

.venv/bin/python -m tests.registrar.measure_recovery [N]

Then the start after a crash at the worst moment: beside the file, a journal
as large as the compaction rule lets it grow (``MIN_COMPACT_BYTES``: the
journal is folded into the file once it reaches the file's size), here every
AOR changed once, appended 100 AORs at a time as the store's flushes do;
and the memory that start leaves the process (RSS, Linux).
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from centrex.registrar import recovery
from centrex.registrar.binding import Binding, Source
from centrex.registrar.memory import MemoryLocationStore


def realistic(n: int, now: float) -> list[Binding]:
    """Bindings as phones make them: half UDP, half TCP, some with instance ids."""
    out = []
    for i in range(n):
        tcp = i % 2 == 1
        out.append(
            Binding(
                id=f"{i:016x}",
                aor=f"sip:{1000 + i}@pbx.example.com",
                contact=f"sip:{1000 + i}@198.51.{i % 256}.{i // 256 % 256}:{5060 + i % 1000}"
                + (";transport=tcp" if tcp else ""),
                expires_at=now + 3600 + i % 600,
                q=None if i % 3 else 0.5,
                call_id=f"{i:08x}-4c1a-9d7e-3b2f1e0a@198.51.{i % 256}.{i // 256 % 256}",
                cseq=i % 1000 + 1,
                source=Source(
                    "tcp" if tcp else "udp",
                    f"198.51.{i % 256}.{i // 256 % 256}",
                    40000 + i % 20000,
                    "udp:203.0.113.1:5060",
                    i if tcp else None,
                ),
                instance=f"<urn:uuid:00000000-0000-1000-8000-{i:012x}>" if i % 4 == 0 else None,
                reg_id=1 if i % 4 == 0 else None,
                path=(),
                user_agent="Yealink SIP-T46U 108.86.0.45",
                server_id="pbx1",
                created_at=now - i % 86400,
                updated_at=now - i % 3600,
            )
        )
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    now = time.time()
    bindings = realistic(n, now)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / recovery.FILE_NAME
        start = time.perf_counter()
        recovery.save(path, bindings, now)
        saved = time.perf_counter() - start
        size = path.stat().st_size
        loads = []
        for _ in range(5):
            start = time.perf_counter()
            loaded = recovery.load(path, now)
            loads.append(time.perf_counter() - start)
        assert len(loaded) == n and loaded[0] == bindings[0]
        opens = _opens(path, now, n)
        journal_size = _write_journal(path, bindings, generation=7)
        crash_opens = _opens(path, now, n)
        crash_rss = _rss_of_open(path, now)
    print(f"{n} bindings: {size / 1e6:.1f} MB ({size / n:.0f} bytes each)")
    print(f"save (encode + fsync + rename): {saved * 1000:.0f} ms")
    print(f"decode: best {min(loads) * 1000:.0f} ms, median {sorted(loads)[2] * 1000:.0f} ms")
    print(f"store open (decode + tables): best {min(opens) * 1000:.0f} ms")
    print(
        f"store open after a crash, with a journal of every AOR changed once"
        f" ({journal_size / 1e6:.1f} MB): best {min(crash_opens) * 1000:.0f} ms"
    )
    print(f"RSS that open adds to a new process (after a collection): {crash_rss:.0f} MB")


def _opens(path: Path, now: float, n: int) -> list[float]:
    """Three timed opens of the store of ``path``, which holds ``n`` bindings."""
    opens = []
    for _ in range(3):
        store = MemoryLocationStore(path)
        start = time.perf_counter()
        asyncio.run(store.open(now))
        opens.append(time.perf_counter() - start)
        assert store.binding_count == n
    return opens


_RSS_OF_OPEN = """
import asyncio, gc, sys
from pathlib import Path
from centrex.registrar.memory import MemoryLocationStore

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

gc.collect()
before = rss()
store = MemoryLocationStore(Path(sys.argv[1]))
asyncio.run(store.open(float(sys.argv[2])))
gc.collect()
print(rss() - before)
"""


def _rss_of_open(path: Path, now: float) -> float:
    """MB of RSS that opening the store of ``path`` adds to a process of its own."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_OF_OPEN, str(path), str(now)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def _write_journal(path: Path, bindings: list[Binding], generation: int) -> int:
    """Save ``bindings`` to ``path`` as journal ``generation``'s file, then
    journal a change of each (its CSeq and expiry); the journal's size."""
    recovery.save(path, bindings, time.time(), generation)
    size = 0
    with recovery.journal_path(path).open("wb") as journal:
        for at in range(0, len(bindings), 100):
            changes = [
                (b.aor, (dataclasses.replace(b, cseq=b.cseq + 1, expires_at=b.expires_at + 60),))
                for b in bindings[at : at + 100]
            ]
            first = generation if at == 0 else None
            size += journal.write(recovery.journal_records(changes, first))
    return size


if __name__ == "__main__":
    main()

"""The table (markdown) and the chart (PNG) of a bench/run.py run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MB = 1024 * 1024
SERVERS = ("Kamailio", "Centrex")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("holds" if ok else "**missed**")


def _step(results: Any, load: str, server: str, rate: int, purpose: str = "sweep") -> Any:
    for step in results.steps:
        if (step.load, step.server, step.rate, step.purpose) == (load, server, rate, purpose):
            return step
    return None


def _mb(value: object) -> str:
    return f"{value / MB:.1f}" if isinstance(value, int | float) else "—"


def markdown(results: Any) -> str:
    m = results.machine
    s = results.settings
    out = [
        f"Run of {results.started}: `{results.command}`",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python {m['python']} "
        f"(uvloop: {m['uvloop']}), Centrex {m['centrex']} (compiled modules: "
        f"{m.get('sip_build', 'pure')}), Kamailio {m['kamailio']} "
        f"(children={s['kamailio_children']}), sipp {m['sipp']}. Window {s['window']:g} s, "
        f"calls of {s['pause_ms']} ms (ACK to BYE), {s['users']:,} REGISTER users.",
        "",
        "| measure | Kamailio | Centrex | Centrex / Kamailio | issue 7 target |",
        "|---|---:|---:|---:|---|",
    ]
    for load, unit in (("register", "REGISTERs/s"), ("call", "calls/s")):
        highest = results.highest.get(load)
        if highest is None:
            continue
        k, c = highest.get("Kamailio"), highest.get("Centrex")
        ok = None if k is None or c is None else c >= 0.5 * k

        def rate(value: int | None) -> str:
            # At the highest rate tried, the server may sustain more.
            return "—" if value is None else ("≥ " if value >= s["max_rate"] else "") + str(value)

        ratio = _ratio(c, k)
        if k is not None and k >= s["max_rate"] and (c is None or c < s["max_rate"]):
            ratio = "≤ " + ratio  # Kamailio's figure is a floor
            ok = False if ok is False else None
        out.append(
            f"| {load}: highest sustained rate ({unit}) | {rate(k)} | {rate(c)} "
            f"| {ratio} | ≥ 0.5x: {_verdict(ok)} |"
        )
        common = results.common_rate.get(load)
        ks, cs = _step(results, load, "Kamailio", common), _step(results, load, "Centrex", common)
        what = "registrations" if load == "register" else "calls"
        # The CPU step of its own, untraced; a run of before it had none
        # took the figure from the traced step.
        kcpu = _step(results, load, "Kamailio", common, "cpu")
        ccpu = _step(results, load, "Centrex", common, "cpu")
        rows = [("", kcpu, ccpu, True)] if kcpu or ccpu else []
        rows.append((" (traced step)" if rows else "", ks, cs, not rows))
        for label, kstep, cstep, target in rows:
            kc = kstep.cpu_per_1000 if kstep else None
            cc = cstep.cpu_per_1000 if cstep else None
            ok = None if kc is None or cc is None else cc <= 3 * kc
            out.append(
                f"| {load}: server CPU s per 1,000 {what} at {common}/s{label} "
                f"| {_ms(kc and round(kc, 3))} | {_ms(cc and round(cc, 3))} | {_ratio(cc, kc)} "
                f"| {'≤ 3x: ' + _verdict(ok) if target else ''} |"
            )
        label = "REGISTER → 200" if load == "register" else "INVITE → 200"
        for name, attr in (
            ((label, "p"), ("BYE → 200", "bye_p")) if load == "call" else ((label, "p"),)
        ):
            k50, k99 = (
                (getattr(ks, f"{attr}50_ms"), getattr(ks, f"{attr}99_ms")) if ks else (None,) * 2
            )
            c50, c99 = (
                (getattr(cs, f"{attr}50_ms"), getattr(cs, f"{attr}99_ms")) if cs else (None,) * 2
            )
            out.append(
                f"| {load}: {name} p50 / p99 at {common}/s (ms) | {_ms(k50)} / {_ms(k99)} "
                f"| {_ms(c50)} / {_ms(c99)} | {_ratio(c50, k50)} / {_ratio(c99, k99)} | |"
            )
        if load == "call" and "sipp-to-sipp" in highest:
            out.append(
                "| call ceiling: sipp to sipp, no server (calls/s) "
                f"| {rate(highest['sipp-to-sipp'])} | | | |"
            )
    mem = results.memory
    if mem:
        k, c = mem.get("Kamailio", {}), mem.get("Centrex", {})
        marks = sorted(
            int(key.split("_")[1]) for key in c if key.startswith("rss_") and key[4:].isdigit()
        )
        settled = isinstance(c.get("rss_settled"), int)
        for mark in marks:
            ok = None
            if mark == 100_000 and isinstance(c.get(f"rss_{mark}"), int) and not settled:
                ok = c[f"rss_{mark}"] < 100 * MB

            def short(info: dict[str, Any], mark: int = mark) -> str:
                # Registrations the server answered 200, when fewer than meant.
                got = info.get(f"answered_{mark}")
                return f" (only {got:,} answered)" if isinstance(got, int) and got < mark else ""

            out.append(
                f"| memory with {mark:,} registrations (MB): Kamailio PSS of "
                f"{k.get('processes', '?')} processes (RSS sum; shm in use), Centrex RSS "
                f"| {_mb(k.get(f'pss_{mark}'))} ({_mb(k.get(f'rss_{mark}'))}; "
                f"{_mb(k.get(f'shm_used_{mark}'))}){short(k)} "
                f"| {_mb(c.get(f'rss_{mark}'))}{short(c)} "
                f"| {_ratio(c.get(f'rss_{mark}'), k.get(f'pss_{mark}'))} "
                f"| {'< 100 MB: ' + _verdict(ok) if mark == 100_000 and not settled else ''} |"
            )
        if settled and marks:
            mark = marks[-1]
            ok = c["rss_settled"] < 100 * MB if mark == 100_000 else None
            out.append(
                f"| memory with {mark:,} registrations, their transactions ended "
                "(Timer J) (MB): Kamailio PSS (RSS sum), Centrex RSS "
                f"| {_mb(k.get('pss_settled'))} ({_mb(k.get('rss_settled'))}) "
                f"| {_mb(c.get('rss_settled'))} "
                f"| {_ratio(c.get('rss_settled'), k.get('pss_settled'))} "
                f"| {'< 100 MB: ' + _verdict(ok) if mark == 100_000 else ''} |"
            )
    rec = results.recovery
    if rec:
        opened = rec.get("store_open_s")
        in_file = rec.get("bindings_in_file", 0)
        # The target is for 100,000: with fewer in the file, no verdict.
        ok = (
            None
            if opened is None or not isinstance(in_file, int) or in_file < 100_000
            else (opened < 1.0)
        )
        out.append(
            f"| Centrex restart with {rec.get('bindings_in_file', 0):,} registrations: "
            "store.open (s) | | "
            f"{opened if opened is not None else '—'} | | < 1 s: {_verdict(ok)} |"
        )
        out.append(
            "| Centrex restart: RSS with the registrations read from the file (MB) "
            f"| | {_mb(rec.get('rss_after_restart'))} | | |"
        )
        out.append(
            "| Centrex restart: process start → answering OPTIONS (s) [with none] "
            f"| | {rec.get('start_to_ready_s', '—')} "
            f"[{mem.get('Centrex', {}).get('ready_after_empty_s', '—')}] | | |"
        )
    out += [
        "",
        "Every step (response times only in the sweep steps, from sipp's message trace):",
        "",
    ]
    out += [
        "| load | server | rate/s | purpose | result | completed | retrans | UDP drops "
        "| server CPU s | CPU s / 1,000 | sipp CPU s | p50 / p99 ms |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for st in results.steps:
        cpu = st.cpu_per_1000
        out.append(
            f"| {st.load} | {st.server} | {st.rate} | {st.purpose} "
            f"| {'pass' if st.ok else 'FAIL: ' + st.reason} | {st.successful}/{st.calls} "
            f"| {st.retransmissions} | {st.udp_drops} | {st.server_cpu_s:.2f} "
            f"| {'—' if cpu is None else f'{cpu:.3f}'} "
            f"| {st.sipp_cpu_s:.2f} | {_ms(st.p50_ms)} / {_ms(st.p99_ms)} |"
        )
    if results.notes:
        out += ["", *results.notes]
    return "\n".join(out) + "\n"


def chart(results: Any, path: Path) -> str:
    """Rate vs response time (p50 and p99) per load and server; returns what was done."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "no chart: matplotlib is not installed (pip install -e '.[bench]')"
    loads = [load for load in ("register", "call") if load in results.highest]
    if not loads:
        return "no chart: no load was run"
    fig, axes = plt.subplots(1, len(loads), figsize=(6.5 * len(loads), 4.8), squeeze=False)
    colours = {"Kamailio": "tab:blue", "Centrex": "tab:orange"}
    for ax, load in zip(axes[0], loads, strict=True):
        for server in SERVERS:
            steps = sorted(
                (st for st in results.steps
                 if st.load == load and st.server == server and st.purpose == "sweep"
                 and st.p50_ms is not None),
                key=lambda st: st.rate,
            )  # fmt: skip
            if not steps:
                continue
            rates = [st.rate for st in steps]
            for attr, style, label in (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99")):
                values = [getattr(st, attr) for st in steps]
                ax.plot(rates, values, style, color=colours[server], label=f"{server} {label}")
                failed = [(st.rate, getattr(st, attr)) for st in steps if not st.ok]
                if failed:
                    ax.plot(*zip(*failed, strict=True), "x", color=colours[server], markersize=9)
            ax.plot(rates, [st.p50_ms for st in steps], "o", color=colours[server], markersize=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        swept = sorted(
            {st.rate for st in results.steps if st.load == load and st.purpose == "sweep"}
        )
        if swept:
            ax.set_xticks(swept)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.tick_params(axis="x", labelrotation=45)
        what = "REGISTER → 200" if load == "register" else "INVITE → 200 (call setup)"
        ax.set_title(f"{'REGISTER' if load == 'register' else 'call'} load: {what}")
        ax.set_xlabel("offered rate (per second, log)")
        ax.set_ylabel("response time (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Centrex vs Kamailio ({results.machine['cpus']} CPUs, {results.started}; "
        "x = step that failed the pass rule)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart: {path}"

"""Turn one run's results into bench/results/latest.md, latest.json and bench.png.

Ratios are Peregrine / peer within the same run: absolute numbers drift on a
shared machine, ratios measured minutes apart are what the targets are about.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"

# Issue 6's targets for the native API, single worker, seed benchmark.
SEED_TARGETS = [
    ("uvicorn", 3.0),
    ("granian-rsgi", 2.0),
    ("granian-asgi", 2.0),
    ("socketify", 2.0),
    ("floor", 0.85),
]

# Issue 10's targets for Peregrine serving ASGI (case, peer, ratio at least).
ASGI_TARGETS = [
    ("asgi-seed-100", "uvicorn", 2.5),
    ("asgi-seed-100", "granian-asgi", 1.5),
    ("asgi-seed-100", "peregrine-server-asgi", 1.0),
    ("starlette-100", "uvicorn", 1.3),
    ("fastapi-100", "uvicorn", 1.3),
]


def ours(case) -> str:
    """The Peregrine server a case compares the peers with: native, or serving the ASGI app."""
    return getattr(case, "ours", "peregrine")


def headline(case, res: dict) -> float | None:
    """The headline number of one result: req/s, msg/s, or KB per idle connection."""
    if not res or "error" in res or "skipped" in res:
        return None
    if case.kind == "http":
        return res.get("rps")
    if case.kind == "ws":
        return res.get("msgs_per_s")
    return res.get("kb_per_conn")


NOISY_CPU = 30  # % of a core used by other processes during a row: flag it


def _noisy(res: dict | None) -> bool:
    return bool(res) and res.get("other_cpu", 0) > NOISY_CPU


def _fmt(case, v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.2f}" if case.kind == "mem" else f"{v:,.0f}"


def _ratio(case, mine: float | None, peer: float | None) -> float | None:
    if not mine or not peer:
        return None
    # For throughput: Peregrine / peer (> 1 is better). For memory: also Peregrine / peer,
    # where < 1 is better; the table headers say which.
    return mine / peer


def _status(res: dict) -> str:
    if "skipped" in res:
        return f"skipped: {res['skipped']}"
    if "error" in res:
        return f"error: {res['error']}"
    return ""


def build_markdown(info, settings, cases, servers, results) -> str:
    out: list[str] = []
    w = out.append
    mode = (
        "quick"
        if settings.get("quick")
        else "partial"
        if settings.get("cases") or settings.get("servers")
        else "full"
    )
    w("# Peregrine benchmark results\n")
    w(f"- Date: {info['date']} ({mode} run, {settings['elapsed_s'] // 60} min)")
    w(f"- Machine: {info['nproc']} CPUs, {info['cpu_model']}, {info['os']}, Linux {info['kernel']}")
    w(
        f"- Pinning: each server on CPU {settings['server_cpu']} (`taskset`), the load generator on "
        f"CPU {settings['load_cpu']}; one server at a time; single worker / one core each"
    )
    w(
        f"- Durations: {settings['duration']:g} s measured per case after {settings['warmup']:g} s "
        f"warm-up; WebSocket {settings['ws_duration']:g} s; idle memory with {settings['mem_conns']:,} connections"
        + (
            f"; {settings['rounds']} rounds with the servers interleaved, each server's median round shown"
            if settings.get("rounds", 1) > 1
            else ""
        )
    )
    w(f"- Peregrine commit: {info['peregrine_commit']}")
    w("- Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    w("")

    names = [s.name for s in servers]
    labels = {s.name: s.label for s in servers}

    # Summary matrix.
    w("## Summary\n")
    w(
        "Requests/s (HTTP cases), messages/s (WebSocket), KB of RSS per idle connection (memory; lower is better).\n"
    )
    w("| server | " + " | ".join(c.id for c in cases) + " |")
    w("|---|" + "---:|" * len(cases))
    for n in names:
        row = []
        for c in cases:
            res = results.get(c.id, {}).get(n)
            row.append(_fmt(c, headline(c, res)) + (" †" if _noisy(res) else "") if res else "")
        w(f"| {labels[n]} | " + " | ".join(row) + " |")
    w("")
    if any(_noisy(r) for cr in results.values() for r in cr.values()):
        w(
            f"† other processes used more than {NOISY_CPU}% of a core during that measurement "
            '(see the "other CPU" column): treat it as noisy.\n'
        )

    # Ratio matrix.
    ourselves = {ours(c) for c in cases}
    if ourselves & set(names):
        w("## Peregrine's ratio to each peer\n")
        w(
            "Peregrine / peer, same run. Throughput: above 1 means Peregrine is faster. "
            "Memory (idle-mem): below 1 means Peregrine uses less. In the ASGI cases "
            "(asgi-\\*, starlette-\\*, fastapi-\\*) Peregrine is Peregrine serving the same ASGI "
            "app as the peer (`Peregrine (ASGI)`), elsewhere its native API.\n"
        )
        w("| peer | " + " | ".join(c.id for c in cases) + " |")
        w("|---|" + "---:|" * len(cases))
        for n in names:
            if n in ourselves:
                continue
            row = []
            for c in cases:
                mine = headline(c, results.get(c.id, {}).get(ours(c), {}))
                r = _ratio(c, mine, headline(c, results.get(c.id, {}).get(n, {})))
                row.append(f"{r:.2f}x" if r else "")
            w(f"| {labels[n]} | " + " | ".join(row) + " |")
        w("")
        http_cases = [c for c in cases if c.kind == "http"]
        if http_cases:
            w("### The same ratio by CPU efficiency\n")
            w(
                "Peregrine's requests per CPU-second of the server / the peer's. Less disturbed by "
                "other load on a shared machine than req/s; a cross-check, not the headline.\n"
            )
            w("| peer | " + " | ".join(c.id for c in http_cases) + " |")
            w("|---|" + "---:|" * len(http_cases))
            for n in names:
                if n in ourselves:
                    continue
                row = []
                for c in http_cases:
                    mine = results.get(c.id, {}).get(ours(c), {}).get("req_per_cpu_s")
                    other = results.get(c.id, {}).get(n, {}).get("req_per_cpu_s")
                    row.append(f"{mine / other:.2f}x" if mine and other else "")
                w(f"| {labels[n]} | " + " | ".join(row) + " |")
            w("")
        w(targets_section(cases, results))
        w(asgi_targets_section(cases, results))
        w(ladder_section(cases, results, labels))

    # Per-case detail.
    w("## Details\n")
    for c in cases:
        case_res = results.get(c.id, {})
        if not case_res:
            continue
        w(f"### {c.id}: {c.title}\n")
        mine = headline(c, case_res.get(ours(c), {}))
        if c.kind == "http":
            w(
                "| server | req/s | p50 ms | p99 ms | errors | bytes/resp | server CPU | wrk CPU | irq CPU | other CPU | req/CPU-s | Peregrine / this |"
            )
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for n, res in case_res.items():
                if _status(res):
                    w(f"| {labels[n]} | {_status(res)} ||||||||||| ")
                    continue
                r = _ratio(c, mine, res["rps"])
                w(
                    f"| {labels[n]} | {res['rps']:,.0f} | {res['p50_ms']:.2f} | {res['p99_ms']:.2f} | "
                    f"{_errors(res)} | {res.get('bytes_per_response', '')} | {res['server_cpu']}% | "
                    f"{res['load_cpu']}% | {res.get('irq_cpu', '?')}% | {res.get('other_cpu', '')}% | {res.get('req_per_cpu_s', 0):,} | "
                    f"{f'{r:.2f}x' if r and n != ours(c) else ''} |"
                )
        elif c.kind == "ws":
            w(
                "| server | msg/s | errors | server CPU | client CPU | irq CPU | other CPU | Peregrine / this |"
            )
            w("|---|---:|---:|---:|---:|---:|---:|---:|")
            for n, res in case_res.items():
                if _status(res):
                    w(f"| {labels[n]} | {_status(res)} ||||||| ")
                    continue
                r = _ratio(c, mine, res["msgs_per_s"])
                w(
                    f"| {labels[n]} | {res['msgs_per_s']:,.0f} | {res['errors']} | {res['server_cpu']}% | "
                    f"{res.get('load_cpu', '')}% | {res.get('irq_cpu', '?')}% | {res.get('other_cpu', '')}% | "
                    f"{f'{r:.2f}x' if r and n != ours(c) else ''} |"
                )
        else:
            w(
                "| server | KB/conn | RSS idle MB | RSS with conns MB | held / requested | Peregrine / this |"
            )
            w("|---|---:|---:|---:|---:|---:|")
            for n, res in case_res.items():
                if _status(res):
                    w(f"| {labels[n]} | {_status(res)} ||||| ")
                    continue
                r = _ratio(c, mine, res.get("kb_per_conn"))
                w(
                    f"| {labels[n]} | {res.get('kb_per_conn')} | {res['base_rss_mb']} | {res['loaded_rss_mb']} | "
                    f"{res['held']} / {res.get('requested', res['opened'])} | {f'{r:.2f}x' if r and n != ours(c) else ''} |"
                )
        w("")
    w("![chart](bench.png)\n")
    return "\n".join(out)


def _errors(res: dict) -> str:
    total = res.get("errors_total", 0)
    if not total:
        return "0"
    parts = [f"{k} {v}" for k, v in res["errors"].items() if v]
    return f"{total} ({', '.join(parts)})"


# (case, Peregrine's server, peer, ratio to reach): issue 11's WSGI targets
WSGI_TARGETS = [
    ("wsgi-100", "peregrine-wsgi", "gunicorn-gthread", 3.0),
    ("wsgi-100", "peregrine-wsgi", "granian-wsgi", 1.3),
    ("wsgi-100", "peregrine-wsgi-t0", "peregrine-server-wsgi", 0.8),
    ("flask-100", "peregrine-wsgi", "gunicorn-gthread", 1.5),
]


def asgi_targets_section(cases, results) -> str:
    """Issue 10's targets (Peregrine serving ASGI apps), checked against this run."""
    by_id = {c.id: c for c in cases}
    lines = []
    for cid, peer, target in ASGI_TARGETS:
        c = by_id.get(cid)
        if c is None:
            continue
        mine = headline(c, results.get(cid, {}).get(ours(c), {}))
        other = headline(c, results.get(cid, {}).get(peer, {}))
        if mine and other:
            r = mine / other
            lines.append(
                f"| {cid}: ≥ {target}x {peer} | {r:.2f}x | {'yes' if r >= target else 'no'} |"
            )
    if not lines:
        return ""
    head = ["## Targets (issue 10, ASGI)\n", "| target | measured | met |", "|---|---:|:-:|"]
    return "\n".join(head + lines) + "\n"


def targets_section(cases, results) -> str:
    """Issue 6's targets, checked against this run."""
    by_id = {c.id: c for c in cases}
    if not {"seed-100", "seed-1000", "idle-mem"} & set(by_id):
        return ""  # a run of other cases (e.g. only the ASGI ones)
    lines = ["## Targets (issue 6)\n", "| target | measured | met |", "|---|---:|:-:|"]

    def val(cid, name):
        c = by_id.get(cid)
        return headline(c, results.get(cid, {}).get(name, {})) if c else None

    mine = val("seed-100", "peregrine")
    for peer, target in SEED_TARGETS:
        other = val("seed-100", peer)
        if mine and other:
            r = mine / other
            lines.append(
                f"| seed-100: ≥ {target}x {peer} | {r:.2f}x | {'yes' if r >= target else 'no'} |"
            )
    for peer in ("h2o", "nginx"):
        other = val("seed-100", peer)
        if mine and other:
            r = mine / other
            lines.append(
                f"| seed-100: beat {peer} (stretch) | {r:.2f}x | {'yes' if r >= 1 else 'no'} |"
            )
    p = results.get("seed-1000", {}).get("peregrine", {})
    u = results.get("seed-1000", {}).get("uvicorn", {})
    if p.get("rps") and u.get("rps"):
        lines.append(
            f"| seed-1000: no errors | {p['errors_total']} | {'yes' if p['errors_total'] == 0 else 'no'} |"
        )
        ok = p["p99_ms"] <= u["p99_ms"]
        lines.append(
            f"| seed-1000: p99 ≤ uvicorn's ({u['p99_ms']:.2f} ms) | {p['p99_ms']:.2f} ms | {'yes' if ok else 'no'} |"
        )
    pm, um = val("idle-mem", "peregrine"), val("idle-mem", "uvicorn")
    if pm is not None and um is not None:
        lines.append(
            f"| idle-mem: KB/conn ≤ uvicorn's ({um:.2f}) | {pm:.2f} | {'yes' if pm <= um else 'no'} |"
        )
    # issue 11 (WSGI): ratios in one run
    for cid, mine_name, peer, target in WSGI_TARGETS:
        m, o = val(cid, mine_name), val(cid, peer)
        if m and o:
            r = m / o
            lines.append(
                f"| {cid}: {mine_name} ≥ {target}x {peer} | {r:.2f}x | {'yes' if r >= target else 'no'} |"
            )
    if len(lines) == 3:
        lines.append("| (Peregrine has no seed-benchmark result in this run) | | |")
    return "\n".join(lines) + "\n"


LADDER = ["floor", "ladder-llhttp", "ladder-api", "peregrine"]
LADDER_PEERS = ["uvicorn", "granian-rsgi", "socketify"]


def ladder_section(cases, results, labels) -> str:
    """The rungs from the floor up to Peregrine (bench/apps/ladder.py), with their own ratios.

    ``ladder-api`` is the least Python work any server with Peregrine's handler API does per
    request: a target it misses cannot be met by making the rest of Peregrine faster in Python.
    """
    lines = [
        "## The ladder: from the floor up to Peregrine\n",
        "Each rung adds one layer of work (see `bench/apps/ladder.py`). CPU µs/request is the "
        "server's CPU time per request (1 / req per CPU-second); the step is what the rung adds "
        "to the one above it.\n",
    ]
    shown = False
    for cid in ("seed-100", "small-100"):
        case_res = results.get(cid, {})
        rungs = [n for n in LADDER if (case_res.get(n) or {}).get("rps")]
        if len(rungs) < 2:
            continue
        shown = True
        peers = [p for p in LADDER_PEERS if (case_res.get(p) or {}).get("rps")]
        lines.append(f"### {cid}\n")
        lines.append(
            "| rung | req/s | CPU µs/request | step | / floor | "
            + " | ".join(f"/ {labels.get(p, p)}" for p in peers)
            + " |"
        )
        lines.append("|---|---:|---:|---:|---:|" + "---:|" * len(peers))
        floor = (case_res.get("floor") or {}).get("rps")
        previous = None
        for n in rungs:
            res = case_res[n]
            per_cpu = res.get("req_per_cpu_s")
            us = 1e6 / per_cpu if per_cpu else None
            step = f"+{us - previous:.1f}" if us is not None and previous is not None else ""
            previous = us if us is not None else previous
            rps = res["rps"]
            ratios = [f"{rps / case_res[p]['rps']:.2f}x" for p in peers]
            lines.append(
                f"| {labels.get(n, n)} | {rps:,.0f} | {f'{us:.1f}' if us else ''} | {step} | "
                f"{f'{rps / floor:.2f}x' if floor else ''} | " + " | ".join(ratios) + " |"
            )
        lines.append("")
    return "\n".join(lines) + "\n" if shown else ""


def write_chart(path: Path, cases, servers, results) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"no chart: {e}"
    labels = {s.name: s.label for s in servers}
    native = {s.name for s in servers if s.native}
    shown = [c for c in cases if any(headline(c, r) for r in results.get(c.id, {}).values())]
    if not shown:
        return "no chart: no results"
    cols = 2
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(13, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, c in zip(axes.flat, shown, strict=False):
        items = [(n, headline(c, r)) for n, r in results.get(c.id, {}).items() if headline(c, r)]
        items.sort(key=lambda x: x[1], reverse=c.kind == "mem")  # best at the top
        names = [labels.get(n, n) for n, _ in items]
        vals = [v for _, v in items]
        colors = [
            "#e8590c"
            if n in ("peregrine", "peregrine-asgi")
            else "#adb5bd"
            if n == "floor"
            else "#1c7ed6"
            if n in native
            else "#495057"
            for n, _ in items
        ]
        bars = ax.barh(names, vals, color=colors)
        for bar, v in zip(bars, vals, strict=False):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {_fmt(c, v)}",
                va="center",
                fontsize=8,
            )
        unit = {
            "http": "requests/s",
            "ws": "messages/s",
            "mem": "KB RSS per idle connection (lower is better)",
        }[c.kind]
        ax.set_title(f"{c.id}: {c.title}", fontsize=10)
        ax.set_xlabel(unit, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_xlim(0, max(vals) * 1.25)
    fig.suptitle(
        "Peregrine vs peers: one worker pinned to one core, load generator on the other",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def update_readme(readme: Path, markdown: str) -> None:
    """Replace the results section of bench/README.md (between the markers) with this run."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    body = markdown.split("\n", 1)[1]  # drop the H1
    body = re.sub(r"^## ", "### ", body, flags=re.M)  # nest under the README's section
    body = re.sub(r"^### (\S+: )", r"#### \1", body, flags=re.M)
    # The README keeps its own copy of the chart, so later partial runs (which rewrite
    # bench.png) cannot make it disagree with the table.
    body = body.replace("![chart](bench.png)", "![chart](results/bench-full.png)")
    start = text.index(README_START) + len(README_START)
    end = text.index(README_END)
    readme.write_text(text[:start] + "\n" + body.strip() + "\n" + text[end:])


def write_all(
    results_dir: Path, *, info, settings, cases, servers, results, readme: Path | None
) -> None:
    md_text = build_markdown(info, settings, cases, servers, results)
    (results_dir / "latest.md").write_text(md_text)
    payload = {
        "info": info,
        "settings": settings,
        "cases": [
            {
                "id": c.id,
                "title": c.title,
                "kind": c.kind,
                "conns": c.conns,
                "path": c.path,
                "method": c.method,
                "app": getattr(c, "app", None),
                "ours": ours(c),
            }
            for c in cases
        ],
        "servers": {s.name: s.label for s in servers},
        "results": results,
    }
    (results_dir / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    why = write_chart(results_dir / "bench.png", cases, servers, results)
    if why:
        print(why)
    if readme is not None:
        update_readme(readme, md_text)
        if (results_dir / "bench.png").exists():
            shutil.copyfile(results_dir / "bench.png", results_dir / "bench-full.png")

"""Turn a run's measurements into ratios, noise, target checks, Markdown and JSON."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import procs

Row = dict[str, Any]
Key = tuple[str, str, int]
MODE_TITLES = {
    "nonstream": "Non-streaming",
    "stream": "Streaming, 50 deltas, zero delay",
    "paced": "Streaming, 50 deltas paced 20 ms/token",
}
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def progress_line(row: Row) -> str:
    cpu = row.get("proxy_cpu_ms_per_req")
    ttfd = row.get("ttfd_p99_ms")
    return (
        f"  {row['mode']:9} c={row['concurrency']:<4} {row['target']:13} "
        f"{row['rps']:>9.1f} req/s  p50 {row.get('p50_ms', 0):>8.3f} ms  "
        + (f"ttfd p99 {ttfd:>8.3f} ms  " if ttfd is not None else "")
        + (f"cpu {cpu:.4f} ms/req  " if cpu is not None else "")
        + f"other load {row.get('foreign_core0', 0):.2f}/{row.get('foreign_core1', 0):.2f}  "
        + (f"ERRORS {row['error_kinds']}" if row["errors"] else "")
    )


def gateway_sanity(metrics_port: int, request_log: str, cells: list[Row]) -> Row:
    """Evidence that the gateway ran with its features on: /metrics answers, the log grew."""
    answered = sum(r.get("answered", 0) for r in cells if r["target"] == "gateway")
    out: Row = {"metrics_status": procs.http_status(metrics_port, "/metrics"), "gateway_requests_answered": answered}
    log = Path(request_log)
    if log.is_file():
        with log.open("rb") as fh:
            out["request_log_lines"] = sum(1 for _ in fh)
    return out


def _index(cells: list[Row]) -> dict[Key, Row]:
    return {(r["target"], r["mode"], r["concurrency"]): r for r in cells}


def _floor(idx: dict[Key, Row], mode: str, conc: int, key: str) -> float | None:
    vals = [r[key] for t in ("floor", "floor-repeat") if (r := idx.get((t, mode, conc))) and r.get(key) is not None]
    return statistics.fmean(vals) if vals else None


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def comparisons(cells: list[Row]) -> list[Row]:
    """Per (mode, concurrency): added latency vs direct and CPU per request vs the floor."""
    idx, out = _index(cells), []
    for mode, conc in sorted(
        {(r["mode"], r["concurrency"]) for r in cells}, key=lambda mc: (list(MODE_TITLES).index(mc[0]), mc[1])
    ):
        direct = idx.get(("direct", mode, conc), {})
        gw = idx.get(("gateway", mode, conc), {})
        row: Row = {"mode": mode, "concurrency": conc}
        for key in ("p50_ms", "ttfd_p50_ms", "ttfd_p99_ms"):
            row[f"floor_added_{key}"] = _sub(_floor(idx, mode, conc, key), direct.get(key))
            row[f"gateway_added_{key}"] = _sub(gw.get(key), direct.get(key))
        floor_cpu = _floor(idx, mode, conc, "proxy_cpu_ms_per_req")
        row["floor_cpu_ms_per_req"] = None if floor_cpu is None else round(floor_cpu, 4)
        row["gateway_cpu_ms_per_req"] = gw.get("proxy_cpu_ms_per_req")
        row["cpu_ratio_gateway_floor"] = _div(gw.get("proxy_cpu_ms_per_req"), floor_cpu)
        row["rps_ratio_gateway_direct"] = _div(gw.get("rps"), direct.get("rps"))
        row["rps_ratio_gateway_floor"] = _div(gw.get("rps"), _floor(idx, mode, conc, "rps"))
        out.append(row)
    return out


def noise(cells: list[Row]) -> Row:
    """Spread between the two floor runs of each cell, in % of their mean."""
    idx = _index(cells)
    spreads: dict[str, list[float]] = {"rps": [], "proxy_cpu_ms_per_req": [], "p50_ms": []}
    for (target, mode, conc), a in idx.items():
        b = idx.get(("floor-repeat", mode, conc))
        if target != "floor" or b is None:
            continue
        for key, vals in spreads.items():
            x, y = a.get(key), b.get(key)
            if x and y:
                vals.append(abs(x - y) / ((x + y) / 2) * 100)
    return {
        key: {"median_pct": round(statistics.median(v), 1), "max_pct": round(max(v), 1)}
        for key, v in spreads.items()
        if v
    }


def foreign_load(cells: list[Row]) -> Row:
    """Core use by anything else during the windows: the run's background noise."""
    out: Row = {}
    for core in ("foreign_core0", "foreign_core1"):
        vals = [r[core] for r in cells if r.get(core) is not None]
        if vals:
            out[core] = {"median": round(statistics.median(vals), 3), "max": round(max(vals), 3)}
    return out


def _worst(comp: list[Row], mode: str, key: str, min_conc: int = 16) -> float | None:
    vals = [r[key] for r in comp if r["mode"] == mode and r["concurrency"] >= min_conc and r[key] is not None]
    return max(vals) if vals else None


def _at(comp: list[Row], mode: str, conc: int, key: str) -> float | None:
    return next((r[key] for r in comp if r["mode"] == mode and r["concurrency"] == conc), None)


def checks(result: Row, comp: list[Row]) -> list[Row]:
    """The issue-6 targets, evaluated on this run (gateway only)."""
    if not any(r["target"] == "gateway" for r in result.get("cells", [])):
        return []
    cells = _index(result["cells"])
    soak = result.get("soak") or {}
    boot = result.get("startup_s", {}).get("gateway") or []
    gw128 = cells.get(("gateway", "nonstream", 128), {}).get("proxy_cpu_ms_per_req")
    gws128 = cells.get(("gateway", "stream", 128), {}).get("proxy_cpu_ms_per_req")
    items: list[tuple[str, str, float | None, bool | None]] = [
        (
            "CPU/request vs floor, non-streaming (worst of c>=16)",
            "<= 2x",
            v := _worst(comp, "nonstream", "cpu_ratio_gateway_floor"),
            v is not None and v <= 2,
        ),
        (
            "CPU/request vs floor, 50-delta streams (worst of c>=16)",
            "<= 2x",
            v := _worst(comp, "stream", "cpu_ratio_gateway_floor"),
            v is not None and v <= 2,
        ),
        (
            "added p50 latency at c=1, non-streaming (ms)",
            "<= 0.3",
            v := _at(comp, "nonstream", 1, "gateway_added_p50_ms"),
            v is not None and v <= 0.3,
        ),
        (
            "added p50 time to first delta at c=1, stream (ms)",
            "<= 0.3",
            v := _at(comp, "stream", 1, "gateway_added_ttfd_p50_ms"),
            v is not None and v <= 0.3,
        ),
        (
            "128 paced streams: added p99 time to first delta (ms)",
            "<= 10",
            v := _at(comp, "paced", 128, "gateway_added_ttfd_p99_ms"),
            v is not None and v <= 10,
        ),
        (
            "128 paced streams: throughput vs direct",
            ">= 0.97",
            v := _at(comp, "paced", 128, "rps_ratio_gateway_direct"),
            v is not None and v >= 0.97,
        ),
        ("RSS after the soak (MiB)", "< 100", v := soak.get("rss_end_mib"), v is not None and v < 100),
        (
            "RSS growth over the soak's second half (MiB)",
            "<= 2 (allocator jitter)",
            v := soak.get("rss_growth_second_half_mib"),
            v is not None and v <= 2,
        ),
        ("start-up to ready, worst launch (s)", "< 1", v := max(boot) if boot else None, v is not None and v < 1),
        (
            "non-streaming requests/s per core at c=128 (machine-dependent)",
            "> 4000",
            v := round(1000 / gw128) if gw128 else None,
            v is not None and v > 4000,
        ),
        (
            "50-delta streams/s per core at c=128 (machine-dependent)",
            "> 2500",
            v := round(1000 / gws128) if gws128 else None,
            v is not None and v > 2500,
        ),
    ]
    return [{"target": n, "goal": g, "measured": m, "pass": ok} for n, g, m, ok in items]


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _matrix_md(cells: list[Row], mode: str) -> list[str]:
    idx = _index(cells)
    rows = []
    for r in cells:
        if r["mode"] != mode:
            continue
        direct = idx.get(("direct", mode, r["concurrency"]), {})
        rows.append(
            [
                r["concurrency"],
                r["target"],
                round(r["rps"]),
                r.get("p50_ms"),
                r.get("p90_ms"),
                r.get("p99_ms"),
                r.get("ttfd_p50_ms"),
                r.get("ttfd_p99_ms"),
                _sub(r.get("p50_ms"), direct.get("p50_ms")),
                r.get("proxy_cpu_ms_per_req"),
                r.get("proxy_cpu_util"),
                r.get("upstream_cpu_ms_per_req"),
                r.get("loadgen_cpu_ms_per_req"),
                r.get("proxy_rss_mib"),
                f"{r.get('foreign_core0', 0):.2f} / {r.get('foreign_core1', 0):.2f}",
                r["errors"],
            ]
        )
    rows.sort(key=lambda x: x[0])
    return _table(
        [
            "conc",
            "target",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "TTFD p50",
            "TTFD p99",
            "added p50 vs direct",
            "proxy CPU ms/req",
            "proxy core use",
            "upstream CPU ms/req",
            "loadgen CPU ms/req",
            "proxy RSS MiB",
            "other load core 0 / 1",
            "errors",
        ],
        rows,
    )


def _comparison_md(comp: list[Row]) -> list[str]:
    rows = [
        [
            r["mode"],
            r["concurrency"],
            r["floor_added_p50_ms"],
            r["gateway_added_p50_ms"],
            r["floor_added_ttfd_p99_ms"],
            r["gateway_added_ttfd_p99_ms"],
            r["floor_cpu_ms_per_req"],
            r["gateway_cpu_ms_per_req"],
            r["cpu_ratio_gateway_floor"],
            r["rps_ratio_gateway_direct"],
        ]
        for r in comp
    ]
    return _table(
        [
            "mode",
            "conc",
            "floor added p50 ms",
            "gateway added p50 ms",
            "floor added TTFD p99 ms",
            "gateway added TTFD p99 ms",
            "floor CPU ms/req",
            "gateway CPU ms/req",
            "CPU ratio gateway/floor",
            "gateway req/s ÷ direct",
        ],
        rows,
    )


def _extras_md(result: Row) -> list[str]:
    lines: list[str] = []
    if soak := result.get("soak"):
        lines += ["", f"### Soak ({soak['target']}, fresh process, half JSON / half streams)", ""]
        lines += _table(
            [
                "requests",
                "errors",
                "req/s",
                "RSS start MiB",
                "RSS at half MiB",
                "RSS end MiB",
                "growth over 2nd half MiB",
            ],
            [
                [
                    soak["requests"],
                    soak["errors"],
                    soak["rps"],
                    soak["rss_start_mib"],
                    soak["rss_half_mib"],
                    soak["rss_end_mib"],
                    soak["rss_growth_second_half_mib"],
                ]
            ],
        )
    if workers := result.get("workers"):
        lines += ["", "### 1 vs 2 workers (unpinned; loadgen + upstream still on core 1)", ""]
        lines += _table(
            ["target", "mode", "conc", "req/s", "p50 ms", "CPU ms/req", "cores used", "processes", "errors"],
            [
                [
                    w["target"],
                    w["mode"],
                    w["concurrency"],
                    w["rps"],
                    w["p50_ms"],
                    w["cpu_ms_per_req"],
                    w["cores_used"],
                    w.get("processes"),
                    w["errors"],
                ]
                for w in workers
            ],
        )
    if boot := result.get("startup_s"):
        lines += ["", "### Start-up to ready (s, each launch)", ""]
        lines += [f"- {name}: {', '.join(f'{s:.3f}' for s in vals) or '-'}" for name, vals in boot.items()]
    if sanity := result.get("gateway_checks"):
        lines += ["", f"Gateway features evidence: {json.dumps(sanity)}"]
    return lines


def markdown(result: Row, image: str) -> str:
    meta, cells = result["meta"], result.get("cells", [])
    comp, nz = comparisons(cells), noise(cells)
    errors = sum(r["errors"] for r in cells)
    lines = [
        f"## Benchmark run {meta['date']}{' (quick)' if meta['quick'] else ''}",
        "",
        f"- machine: {meta['cpus']} CPUs ({meta['machine']}), Python {meta['python']}; "
        f"{meta['pinning']}; run took {meta.get('runtime_s', '?')} s",
        f"- gateway: {meta.get('gateway')}; config check: "
        f"{meta.get('gateway_config_validation')}; request log: {meta.get('request_log')}",
        f"- errors in the matrix: {errors}",
        "- noise (floor vs floor-repeat, same cell): "
        + "; ".join(f"{k} median {v['median_pct']}% / max {v['max_pct']}%" for k, v in nz.items()),
        "- other load on the machine during the windows (cores busy outside the bench): "
        + "; ".join(f"{k[-5:]} median {v['median']} / max {v['max']}" for k, v in foreign_load(cells).items()),
        "",
        f"![added latency and CPU per request]({image})",
    ]
    if check_rows := checks(result, comp):
        lines += ["", "### Issue 6 targets", ""]
        lines += _table(
            ["target", "goal", "measured", "pass"],
            [[c["target"], c["goal"], c["measured"], "yes" if c["pass"] else "**no**"] for c in check_rows],
        )
    lines += ["", "### Gateway and floor against direct", "", *_comparison_md(comp)]
    for mode, title in MODE_TITLES.items():
        if any(r["mode"] == mode for r in cells):
            lines += ["", f"### {title}", "", *_matrix_md(cells, mode)]
    lines += _extras_md(result)
    return "\n".join(lines) + "\n"


def update_docs(docs: Path, block: str) -> bool:
    """Replace the text between the result markers of ``docs``; False when they are missing."""
    if not docs.is_file():
        return False
    text = docs.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    docs.write_text(text[: start + len(BEGIN)] + "\n" + block + text[end:])
    return True


def write_all(result: Row, outdir: Path, docs: Path | None) -> list[Path]:
    import plot

    comp = comparisons(result.get("cells", []))
    result["comparisons"], result["noise"] = comp, noise(result.get("cells", []))
    result["foreign_load"] = foreign_load(result.get("cells", []))
    result["targets"] = checks(result, comp)
    outdir.mkdir(parents=True, exist_ok=True)
    written = [outdir / "latest.json", outdir / "latest.md", outdir / "latest.png"]
    written[0].write_text(json.dumps(result, indent=1) + "\n")
    written[1].write_text(markdown(result, "latest.png"))
    plot.plot(result.get("cells", []), comp, written[2])
    if docs is not None:
        try:
            image = str(Path("..") / written[2].resolve().relative_to(docs.resolve().parents[1]))
        except ValueError:
            image = str(written[2].resolve())
        if update_docs(docs, markdown(result, image)):
            written.append(docs)
    return written

"""PNG of added latency (vs direct) and proxy CPU per request against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MODES = {
    "nonstream": ("Non-streaming", "p50_ms", "added p50 latency (ms)"),
    "stream": ("Stream, 50 deltas, no delay", "ttfd_p50_ms", "added p50 time to first delta (ms)"),
    "paced": ("Stream, paced 20 ms/token", "ttfd_p99_ms", "added p99 time to first delta (ms)"),
}
COLORS = {"floor": "tab:blue", "floor-repeat": "tab:cyan", "gateway": "tab:red"}


def plot(cells: list[dict[str, Any]], comp: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    for col, (mode, (title, key, label)) in enumerate(MODES.items()):
        top, bottom = axes[0][col], axes[1][col]
        rows = [r for r in comp if r["mode"] == mode]
        for who in ("floor", "gateway"):
            pts = [(r["concurrency"], r[f"{who}_added_{key}"]) for r in rows if r[f"{who}_added_{key}"] is not None]
            if pts:
                top.plot(*zip(*pts, strict=True), marker="o", color=COLORS[who], label=who)
        top.set_title(title)
        top.set_ylabel(label)
        for target, color in COLORS.items():
            pts = sorted(
                (r["concurrency"], r["proxy_cpu_ms_per_req"])
                for r in cells
                if r["mode"] == mode and r["target"] == target and r.get("proxy_cpu_ms_per_req") is not None
            )
            if pts:
                bottom.plot(*zip(*pts, strict=True), marker="o", color=color, label=target)
        bottom.set_ylabel("proxy CPU per request (ms)")
        bottom.set_ylim(bottom=0)
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            concs = sorted({r["concurrency"] for r in cells})
            ax.set_xticks(concs, [str(c) for c in concs])
            ax.set_xlabel("concurrency")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
    fig.suptitle("ModelGate: cost over a direct connection (proxy pinned to one core)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

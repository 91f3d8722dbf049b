"""The chart carries a byte copy of every CRD under the top-level crds/ (the source of truth).

Run `python tests/support/chart_crds.py` after editing crds/ to refresh the chart's copies;
tests/chart/test_chart_crds.py fails while they differ.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "crds"
CHART_CRDS = ROOT / "charts" / "modelgate" / "crds"
MODELROUTE_CRD = "modelroutes.modelgate.dev.yaml"
# CRDs only the chart ships (third-party resources the operator relies on).
CHART_ONLY = {"kopfpeerings.kopf.dev.yaml"}


def source_crds() -> list[Path]:
    return sorted(p for p in SOURCE.glob("*.yaml") if p.is_file())


def sync() -> list[Path]:
    """Copy every crds/*.yaml into the chart; returns the files written."""
    written = []
    for src in source_crds():
        dst = CHART_CRDS / src.name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
            written.append(dst)
    return written


if __name__ == "__main__":
    for path in sync():
        print(f"updated {path.relative_to(ROOT)}")
    sys.exit(0)

"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--only TEXT]``.

Prints one table and writes it to ``benchmarks/results/latest.{json,md}`` (``--quick``:
``latest-quick.{json,md}``, so a quick check never replaces the committed full results).
A case that raises becomes an "error: ..." row and the suite goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import (
    cases_boosters,
    cases_ig,
    cases_lime,
    cases_scale,
    cases_shap,
    cases_tree,
    cases_tree_engine,
    report,
)
from benchmarks.common import Row, Sizes, Workspace

RESULTS = Path(__file__).parent / "results"
CASES = [
    *cases_shap.CASES,
    *cases_tree.CASES,
    *cases_boosters.CASES,
    *cases_tree_engine.CASES,
    *cases_lime.CASES,
    *cases_ig.CASES,
    *cases_scale.CASES,
]
PACKAGES = (
    "xaicli", "numpy", "pandas", "pyarrow", "scikit-learn", "numba", "joblib", "shap", "lime",
    "xgboost", "lightgbm", "woodelf-explainer",
)  # fmt: skip


def environment(mode: str, wall_time_s: float, load_at_start: float) -> dict[str, Any]:
    def package_version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "mode": mode,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in PACKAGES},
        "wall_time_s": round(wall_time_s, 1),
        # other processes on the machine skew timings (the ratios less so)
        "load_average_at_start": round(load_at_start, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its
    descendants) so far: their difference over a case is what other processes took."""
    import psutil

    times = psutil.cpu_times()
    busy = sum(getattr(times, f) for f in ("user", "nice", "system", "irq", "softirq", "steal")
               if hasattr(times, f))  # fmt: skip
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            mine += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return busy, mine


def run_case(name: str, case, sizes: Sizes) -> list[Row]:
    print(f"running {name} ...", file=sys.stderr, flush=True)
    start, (busy0, mine0) = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="xai-bench-") as folder:
        try:
            rows = case(Workspace(Path(folder)), sizes)
        except Exception as exc:  # noqa: BLE001 - one failing case must not stop the suite
            traceback.print_exc(file=sys.stderr)
            family = name.split(" ", 1)[0]
            rows = [Row(family, name, error=f"{type(exc).__name__}: {exc}")]
    seconds = time.perf_counter() - start
    busy1, mine1 = cpu_seconds()
    # cores kept busy by other processes on average (approximate: children that ended
    # unwaited are missed): timings of a case with a high value are disturbed
    others = max(0.0, (busy1 - busy0) - (mine1 - mine0)) / seconds
    print(f"  {seconds:.1f} s (other processes: {others:.2f} cores)", file=sys.stderr)
    for row in rows:
        row.metrics.update(case_seconds=round(seconds, 2), other_processes_cores=round(others, 2))
        if others > 0.25:
            row.note = (row.note + "; " if row.note else "") + (
                f"DISTURBED: other processes kept {others:.2f} cores busy during this case"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rows: about one minute")
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    args = parser.parse_args(argv)

    sizes = Sizes.for_mode(args.quick)
    selected = [(n, c) for n, c in CASES if not args.only or args.only.lower() in n.lower()]
    start, load = time.perf_counter(), os.getloadavg()[0]
    rows = [row for name, case in selected for row in run_case(name, case, sizes)]
    mode = "quick" if args.quick else "full"
    if args.only:
        mode += f", only '{args.only}'"
    env = environment(mode, time.perf_counter() - start, load)

    report.print_table(rows, env)
    RESULTS.mkdir(exist_ok=True)
    stem = "latest-quick" if args.quick else "latest"
    if args.only:
        stem += "-partial"  # a subset never replaces a whole run's record
    report.write_json(RESULTS / f"{stem}.json", rows, env)
    (RESULTS / f"{stem}.md").write_text(report.markdown(rows, env), encoding="utf-8")
    print(f"wrote {RESULTS / stem}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

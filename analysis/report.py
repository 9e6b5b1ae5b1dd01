#!/usr/bin/env python3
"""Plots and a summary of an LBLab results file, for a quick look outside a notebook.

    python3 analysis/report.py lblab.db --out analysis-out/
    python3 analysis/report.py results/ --out analysis-out/     # the CSV files of lbctl export

Writes summary.csv (per run: requests, errors, throughput, corrected-latency percentiles by nearest
rank, as lbctl report computes them), latency_cdf.png (one curve per run), and for each run
shares_run<ID>.png (requests per second per backend, faults show as steps) and cpu_run<ID>.png (cores
used by every backend, the proxy and the load generator).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lblab_results as results  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a results file (lblab.db) or a directory of lbctl export CSV files")
    parser.add_argument("--out", default="analysis-out", help="where the files go")
    arguments = parser.parse_args()
    source = Path(arguments.source)
    if not source.exists():
        print(f"report.py: {source}: no such file or directory", file=sys.stderr)
        return 2
    tables = results.load(source)
    if tables["runs"].empty:
        print(f"report.py: {source}: no runs", file=sys.stderr)
        return 1
    out = Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)

    summary = results.summary(tables)
    summary.to_csv(out / "summary.csv")
    print(summary.to_string(float_format=lambda value: f"{value:.2f}"))

    requests = results.measured_requests(tables)
    figure, axes = plt.subplots(figsize=(8, 5))
    for run_id, group in requests[requests["status"].notna()].groupby("run_id"):
        latencies = group["latency_ms"].sort_values().to_numpy()
        axes.plot(latencies, [(index + 1) / len(latencies) for index in range(len(latencies))], label=f"run {run_id} {group['algorithm'].iloc[0]}")
    axes.set_xscale("log")
    axes.set_xlabel("latency from the intended send time (ms, log scale)")
    axes.set_ylabel("share of requests")
    axes.legend()
    figure.savefig(out / "latency_cdf.png", dpi=100, bbox_inches="tight")
    plt.close(figure)

    for run_id in tables["runs"]["id"]:
        save_per_second(results.backend_shares_per_second(tables, run_id),
                        f"run {run_id}: requests per second by backend", out / f"shares_run{run_id}.png")
        save_per_second(results.cpu_per_second(tables, run_id),
                        f"run {run_id}: CPU cores in use", out / f"cpu_run{run_id}.png")
    print(f"\nwritten to {out}/")
    return 0


def save_per_second(frame, title, path):
    """Plots a run's per-second frame (one line per column) into `path`, unless it has no rows."""
    if frame.empty:
        return
    axes = frame.plot(figsize=(8, 4), title=title)
    axes.set_xlabel("second of the run")
    axes.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(axes.figure)


if __name__ == "__main__":
    sys.exit(main())

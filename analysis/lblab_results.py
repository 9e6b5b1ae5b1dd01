"""Reading an LBLab results file (SQLite, or the CSV files of `lbctl export`) into pandas.

Every time in the file is integer microseconds since its run's start. Latency as the user saw it is
`done_us - intended_us` (corrected for coordinated omission); service time is `done_us - sent_us`.
The measured window of a run lies between its `phase measure` and `phase drain` events.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pandas as pd

TABLES = ["runs", "backends", "requests", "proxy_requests", "samples", "events"]


def load(source: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of a results file (a .db file, or a directory of CSV files from `lbctl export`)."""
    source = Path(source)
    if source.is_dir():
        return {table: pd.read_csv(source / f"{table}.csv") for table in TABLES}
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as connection:
        return {table: pd.read_sql_query(f"SELECT * FROM {table}", connection) for table in TABLES}


def windows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each run's measured window: from `phase measure` to `phase drain` (all requests if absent)."""
    events = tables["events"]
    phases = events[events["kind"] == "phase"].pivot_table(index="run_id", columns="subject", values="t_us", aggfunc="min")
    requests = tables["requests"].groupby("run_id").agg(first=("intended_us", "min"), last=("done_us", "max"))
    frame = requests.join(phases, how="left")
    start = frame["measure"] if "measure" in frame else frame["first"]
    end = frame["drain"] if "drain" in frame else frame["last"]
    return pd.DataFrame({"start": start.fillna(frame["first"]), "end": end.fillna(frame["last"])})


def measured_requests(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Requests due inside their run's window, with `latency_ms` (corrected) and `service_ms`."""
    requests = tables["requests"].join(windows(tables), on="run_id")
    requests = requests[(requests["intended_us"] >= requests["start"]) & (requests["intended_us"] <= requests["end"])].copy()
    requests["latency_ms"] = (requests["done_us"] - requests["intended_us"]) / 1000
    requests["service_ms"] = (requests["done_us"] - requests["sent_us"]) / 1000
    runs = tables["runs"].set_index("id")
    requests["algorithm"] = requests["run_id"].map(runs["algorithm"])
    return requests


def nearest_rank(values: pd.Series, percentile: float) -> float:
    """The nearest-rank percentile, as `lbctl report` computes it."""
    ordered = values.sort_values().to_numpy()
    if len(ordered) == 0:
        return math.nan
    return float(ordered[max(1, math.ceil(len(ordered) * percentile / 100)) - 1])


def summary(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run: requests, errors, throughput and corrected-latency percentiles over the window."""
    requests = measured_requests(tables)
    window = windows(tables)
    rows = []
    for run_id, group in requests.groupby("run_id"):
        answered = group[group["status"].notna()]
        errors = group[group["error"].notna() | (group["status"] >= 500)]
        seconds = max(1, window.loc[run_id, "end"] - window.loc[run_id, "start"]) / 1e6
        row = {
            "run_id": run_id,
            "algorithm": group["algorithm"].iloc[0],
            "requests": len(group),
            "errors": len(errors),
            "throughput": len(answered) / seconds,
        }
        for percentile in (50, 90, 99, 99.9):
            row[f"p{percentile:g}_ms"] = nearest_rank(answered["latency_ms"], percentile)
        row["max_ms"] = answered["latency_ms"].max()
        rows.append(row)
    return pd.DataFrame(rows).set_index("run_id")


def backend_shares_per_second(tables: dict[str, pd.DataFrame], run_id: int) -> pd.DataFrame:
    """Requests per second served by each backend of one run (columns: backend names)."""
    requests = tables["requests"]
    requests = requests[(requests["run_id"] == run_id) & requests["backend_id"].notna()]
    backends = tables["backends"]
    names = backends[backends["run_id"] == run_id].set_index("id")["name"]
    second = (requests["intended_us"] // 1_000_000).rename("second")
    counts = requests.groupby([second, requests["backend_id"].map(names)]).size().unstack(fill_value=0)
    return counts


def cpu_per_second(tables: dict[str, pd.DataFrame], run_id: int) -> pd.DataFrame:
    """CPU cores in use by each sampled source of one run, from the cumulative counters."""
    samples = tables["samples"]
    samples = samples[(samples["run_id"] == run_id) & samples["cpu_usage_us"].notna()].sort_values("t_us")
    frames = {}
    for source, group in samples.groupby("source"):
        if source == "host":
            continue
        used = group["cpu_usage_us"].diff() / group["t_us"].diff()
        frames[source] = pd.Series(used.to_numpy(), index=group["t_us"].to_numpy() / 1e6)
    return pd.DataFrame(frames)

"""Benchmark dataset ingestion against a plain pyarrow CSV-to-Parquet conversion.

Run by hand (it is not a test)::

    .venv/bin/python bench/ingest.py                 # 1,000,000 rows x 36 columns, 5 rounds
    .venv/bin/python bench/ingest.py --rows 200000 --rounds 1

It writes a seeded synthetic credit CSV into a temporary directory, then for
each round runs three jobs, each in a fresh Python process so that one job's
memory cannot flatter or burden another:

* ``reference``: ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table(compression="zstd")``;
* ``ingest``: ``riskmodels.ml.ingest.ingest`` (conversion, validation, hash and profile),
  as the service runs it;
* ``profile``: ``riskmodels.ml.profiling.profile_parquet`` alone, on the file the round's
  ``ingest`` wrote: what the profile adds to the conversion.

Time is wall-clock time of the job alone (imports excluded). The median over
the rounds is reported, and also the best ingest run against the best
reference run, so that noise on a shared machine cannot flatter the ratio.

Memory is the job's peak resident set (VmHWM) minus its resident set just
before the job started (after imports). That charges each job with everything
it allocates (Arrow buffers, numpy arrays, Python objects, allocator caching)
and nothing it merely imported, and it is compared with ``table.nbytes`` of the
whole file read as one Arrow table. The Arrow memory pool's high-water mark is
printed too, but it misses numpy and Python allocations, so it is not the
measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIME_TARGET = 1.5
MEMORY_TARGET = 2.0


def make_table(rows: int, seed: int = 20240601):  # noqa: ANN201 - pyarrow imported lazily
    """Return a seeded synthetic credit table: 36 columns of ints, floats, categoricals and a target."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns = {"loan_id": pa.array(np.arange(1, rows + 1, dtype=np.int64))}
    for i in range(12):
        columns[f"int_{i:02d}"] = pa.array(rng.integers(0, 10 ** (i % 6 + 1), rows))
    for i in range(12):
        values = rng.normal(1000 * (i + 1), 100 * (i + 1), rows).round(2)
        missing = rng.random(rows) < 0.05 if i < 3 else None  # 5% missing in three columns
        columns[f"float_{i:02d}"] = pa.array(values, mask=missing)
    for i, cardinality in enumerate((3, 5, 8, 12, 20, 30, 50, 4, 7, 10)):
        labels = np.array([f"cat{i}_value_{j}" for j in range(cardinality)], dtype=object)
        missing = rng.random(rows) < 0.02 if i < 2 else None  # 2% missing in two columns
        columns[f"cat_{i:02d}"] = pa.array(labels[rng.integers(0, cardinality, rows)], pa.string(), mask=missing)
    columns["default_flag"] = pa.array((rng.random(rows) < 0.1).astype(np.int64))
    return pa.table(columns)


def run_child(job: str, csv_path: Path, out_dir: Path) -> dict[str, float]:
    """Run one job in a fresh interpreter and return what it measured."""
    command = [sys.executable, __file__, "--child", job, "--csv", str(csv_path), "--out", str(out_dir)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(job: str, csv_path: Path, out_dir: Path) -> None:
    """Run ``job`` in this process and print its measurements as one JSON line."""
    sys.path.insert(0, str(ROOT))
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from riskmodels.ml.ingest import ingest
    from riskmodels.ml.profiling import profile_parquet

    baseline = _status_kib("VmRSS")
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result: dict[str, float] = {}
    if job == "reference":
        table = pcsv.read_csv(csv_path)
        pq.write_table(table, out_dir / "reference.parquet", compression="zstd")
        result["table_nbytes"] = table.nbytes
        result["size_bytes"] = (out_dir / "reference.parquet").stat().st_size
    elif job == "ingest":
        done = ingest(csv_path, out_dir / "ingest.parquet", target="default_flag")
        result["size_bytes"] = done.size_bytes
    elif job == "profile":  # runs after the round's ingest, on its file
        profile_parquet(out_dir / "ingest.parquet", roles={"default_flag": "target"})
        result["size_bytes"] = (out_dir / "ingest.parquet").stat().st_size
    else:
        raise SystemExit(f"unknown job {job}")
    result["seconds"] = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    result["peak_rss_bytes"] = _status_kib("VmHWM") * 1024
    result["baseline_rss_bytes"] = baseline * 1024
    result["peak_delta_bytes"] = result["peak_rss_bytes"] - result["baseline_rss_bytes"]
    result["arrow_pool_max_bytes"] = pa.default_memory_pool().max_memory()
    print(json.dumps(result))


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def main() -> None:
    """Generate the data, run the jobs, print a report and the verdict against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.csv, args.out)
        return

    import pyarrow as pa
    import pyarrow.csv as pcsv

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        work = Path(scratch)
        csv_path = work / "credit.csv"
        started = time.perf_counter()
        table = make_table(args.rows)
        pcsv.write_csv(table, csv_path)
        del table
        print(
            f"data: {args.rows:,} rows x 36 columns, {csv_path.stat().st_size / 1e6:.0f} MB CSV "
            f"(generated in {time.perf_counter() - started:.1f} s)"
        )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"pyarrow {pa.__version__}; load average before: {os.getloadavg()[0]:.2f}"
        )
        runs: dict[str, list[dict[str, float]]] = {"reference": [], "ingest": [], "profile": []}
        run_child("reference", csv_path, work)  # warm the page cache so no job pays for the disk
        for round_number in range(1, args.rounds + 1):
            for job in runs:
                runs[job].append(run_child(job, csv_path, work))
            print(
                f"round {round_number}: "
                + ", ".join(f"{job} {results[-1]['seconds']:.2f} s" for job, results in runs.items())
            )

    def median(job: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[job])

    nbytes = median("reference", "table_nbytes")
    reference = median("reference", "seconds")
    print(f"\nArrow table of the whole file: {nbytes / 1e6:.0f} MB")
    headings = ("time s", "cpu s", "x ref", "peak MB", "x table", "pool MB", "file MB")
    print(f"{'job':<10}" + "".join(f"{h:>9}" for h in headings))
    for job in runs:
        seconds = median(job, "seconds")
        peak = median(job, "peak_delta_bytes")
        cells = (
            f"{seconds:.2f}",
            f"{median(job, 'cpu_seconds'):.2f}",
            f"{seconds / reference:.2f}",
            f"{peak / 1e6:.0f}",
            f"{peak / nbytes:.2f}",
            f"{median(job, 'arrow_pool_max_bytes') / 1e6:.0f}",
            f"{median(job, 'size_bytes') / 1e6:.1f}",
        )
        print(f"{job:<10}" + "".join(f"{c:>9}" for c in cells))
    time_ratio = median("ingest", "seconds") / reference
    best_ratio = min(r["seconds"] for r in runs["ingest"]) / min(r["seconds"] for r in runs["reference"])
    memory_ratio = median("ingest", "peak_delta_bytes") / nbytes
    print(
        f"\ningest time / reference: {time_ratio:.2f} median of {args.rounds}, {best_ratio:.2f} best vs best "
        f"(target <= {TIME_TARGET}) {'met' if max(time_ratio, best_ratio) <= TIME_TARGET else 'NOT met'}"
    )
    print(
        f"ingest peak memory / Arrow table: {memory_ratio:.2f} (target <= {MEMORY_TARGET}) "
        f"{'met' if memory_ratio <= MEMORY_TARGET else 'NOT met'}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f} (other work on the machine inflates every time)")


if __name__ == "__main__":
    main()

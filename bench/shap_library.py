"""Benchmark the service's ML core (riskmodels.ml.explain, no Celery) against a bare
``shap.TreeExplainer(model).shap_values(X)``.

Run by hand (it is not a test)::

    .venv/bin/python bench/shap_library.py                        # 10k, 100k, 1M rows; HGB and RF
    .venv/bin/python bench/shap_library.py --rows 10000 100000    # quicker

For HistGradientBoosting and RandomForest pipelines fitted on 20,000 synthetic rows (20 numeric
features, so that the bare call is a valid reference: shap's own loader misreads HGB models with
categorical features), and for each row count, it times:

* ``bare``: ``shap.TreeExplainer(model).shap_values(X)`` on the already preprocessed matrix,
  explainer construction included, in this process;
* ``service, 1 worker``: :func:`riskmodels.ml.explain.explain_global` on the raw rows (feature
  preparation, preprocessing, TreeSHAP, summing to features, the model's own output and the
  additivity check, chunk by chunk, then merged) plus ``GlobalReport.to_parquet_bytes()``;
* ``service, 2 workers``: the same chunks spread over two fresh worker processes (spawned, as
  two Celery workers would be): each loads the model through ``load_artifact`` and builds the
  explainer once at start-up (not timed, like a running worker), then per chunk reads its rows
  from a Parquet file (one row group per chunk) and returns the chunk's Parquet bytes; the
  parent merges them into the report's Parquet bytes (``merge_chunks_to_parquet``, as the service does). Workers are limited to one
  OpenMP/BLAS thread each, so two workers use the two cores without oversubscription.

Peak memory per worker is each worker's peak resident set (``VmHWM``) after its chunks, and its
growth over the resident set right after start-up (imports, model, explainer). The merged values are
checked against the bare call (max |difference|) and the two service runs against each other
(exactly equal).

Each measurement is repeated ``--rounds`` times, interleaved, and the best time is reported: the
reference machine is shared, and the best run is the one least disturbed by other work.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# This file is called shap.py: without this, "import shap" would import the benchmark itself.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

N_FEATURES = 20
TRAIN_ROWS = 20_000
ONE_WORKER_TARGET = 1.2  # service time / bare time, at most
TWO_WORKER_TARGET = 1.5  # bare time / service time with two workers, at least


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Return seeded synthetic applicants: 20 numeric features and a default/paid target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, N_FEATURES))
    logit = -1.0 + X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.6 * X[:, 3] + 0.5 * np.abs(X[:, 4])
    frame = pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(N_FEATURES)])
    frame["status"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "default", "paid")
    return frame


def fitted(algorithm: str, hyperparameters: dict):  # noqa: ANN201
    from riskmodels.ml.pipelines import TrainingSpec
    from riskmodels.ml.training import train

    spec = TrainingSpec(
        algorithm=algorithm,
        target="status",
        positive_class="default",
        features=tuple(f"x{i:02d}" for i in range(N_FEATURES)),
        hyperparameters=hyperparameters,
        seed=1,
    )
    return spec, train(make_frame(TRAIN_ROWS, seed=1), spec).pipeline


# --- worker process --------------------------------------------------------------------------

_WORKER: dict = {}


def _status_kb(field: str) -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a spawned worker would
    # report the parent's peak (with its million-row frame) as its own.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _worker_start(artifact: bytes, sha256: str, spec: dict, rows_path: str) -> None:
    from threadpoolctl import threadpool_limits

    from riskmodels.ml.explain import ExplainOptions, make_explainer
    from riskmodels.ml.persistence import load_artifact
    from riskmodels.ml.pipelines import TrainingSpec

    # One thread per worker process: the deployment runs one worker per core.
    _WORKER["limits"] = threadpool_limits(1)
    pipeline = load_artifact(artifact, expected_sha256=sha256)
    training_spec = TrainingSpec.from_dict(spec)
    _WORKER["explainer"] = make_explainer(pipeline, training_spec, options=ExplainOptions(max_rows=None))
    _WORKER["rows"] = pq.ParquetFile(rows_path)
    _WORKER["started_rss_kb"] = _status_kb("VmRSS")


def _worker_ping(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _worker_chunk(row_group: int, start: int, stop: int) -> tuple[bytes, int, int, int, float]:
    from riskmodels.ml.explain import explain_chunk

    started = time.perf_counter()
    rows = _WORKER["rows"].read_row_group(row_group).to_pandas()
    chunk = explain_chunk(_WORKER["explainer"], rows, start=start, row_ids=range(start, stop))
    data = chunk.to_parquet_bytes()
    return data, os.getpid(), _status_kb("VmHWM"), _WORKER["started_rss_kb"], time.perf_counter() - started


# --- measurements ----------------------------------------------------------------------------


def bare(pipeline, spec, frame: pd.DataFrame) -> tuple[float, float, np.ndarray]:  # noqa: ANN001
    import shap

    from riskmodels.ml.pipelines import prepare_features

    X = pipeline[:-1].transform(prepare_features(frame, spec))  # not timed: the bare call's input
    wall, cpu = time.perf_counter(), time.process_time()
    values = shap.TreeExplainer(pipeline[-1]).shap_values(X, check_additivity=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if values.ndim == 3:  # random forest: one slice per class; the service keeps "default"
        values = values[..., 1]
    return wall, cpu, np.ascontiguousarray(values)


def one_worker(pipeline, spec, frame: pd.DataFrame, chunk_size: int):  # noqa: ANN001, ANN201
    from riskmodels.ml.explain import ExplainOptions, explain_global

    started = time.perf_counter()
    report = explain_global(pipeline, spec, frame, options=ExplainOptions(max_rows=None, chunk_size=chunk_size))
    data = report.to_parquet_bytes()
    return time.perf_counter() - started, report, len(data)


def two_workers(pipeline, spec, frame: pd.DataFrame, chunk_size: int, workers: int, scratch: Path):  # noqa: ANN001, ANN201
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from riskmodels.ml.explain import ChunkResult, GlobalReport, merge_chunks_to_parquet, plan_chunks, select_rows
    from riskmodels.ml.persistence import dumps_artifact, sha256_hex

    rows_path = scratch / f"rows_{len(frame)}.parquet"
    # The dataset at rest, one row group per chunk, as a worker would read it from storage.
    pq.write_table(pa.Table.from_pandas(frame.drop(columns="status"), preserve_index=False), rows_path,
                   row_group_size=chunk_size, compression="zstd")
    artifact = dumps_artifact(pipeline)
    plan = plan_chunks(len(frame), chunk_size)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start,
                             initargs=(artifact, sha256_hex(artifact), spec.to_dict(), str(rows_path))) as pool:
        # Start every worker before the clock, as running Celery workers are. A ping holds its
        # worker for a while, so the next ping goes to another one; a worker slow to start
        # (imports, model) gets longer pings.
        for hold in (1.0, 3.0, 10.0):
            pids = set(pool.map(_worker_ping, [hold] * workers))
            if len(pids) == workers:
                break
        else:
            raise SystemExit(f"only {len(pids)} of {workers} worker processes answered")
        started = time.perf_counter()
        futures = [pool.submit(_worker_chunk, i, a, b) for i, (a, b) in enumerate(plan)]
        results = [f.result() for f in futures]
        chunks = [ChunkResult.from_parquet_bytes(r[0]) for r in results]
        sink = io.BytesIO()
        merge_chunks_to_parquet(chunks, selection=select_rows(len(frame), max_rows=None, seed=0), sink=sink)
        elapsed = time.perf_counter() - started
    report = GlobalReport.from_parquet_bytes(sink.getvalue())  # not timed: only to compare the values
    memory: dict[int, dict[str, float]] = {}
    for _, pid, peak_kb, start_kb, seconds in results:
        entry = memory.setdefault(pid, {"peak_mb": 0.0, "started_mb": start_kb / 1024, "chunks": 0, "busy_s": 0.0})
        entry["peak_mb"] = max(entry["peak_mb"], peak_kb / 1024)
        entry["chunks"] += 1
        entry["busy_s"] = round(entry["busy_s"] + seconds, 3)
    rows_path.unlink()
    return elapsed, report, memory


def run(args: argparse.Namespace) -> dict:
    from riskmodels.ml.explain import estimate_cost
    from riskmodels.ml.persistence import environment_versions

    scratch = ROOT / "bench" / "out"
    scratch.mkdir(parents=True, exist_ok=True)
    models = {
        "gradient_boosting": {"max_iter": args.hgb_iter, "max_depth": args.hgb_depth},
        "random_forest": {"n_estimators": args.rf_trees, "max_depth": args.rf_depth},
    }
    results = []
    for algorithm, hyperparameters in models.items():
        if algorithm not in args.models:
            continue
        spec, pipeline = fitted(algorithm, hyperparameters)
        for rows in args.rows:
            frame = make_frame(rows, seed=2)
            bare_s = one_s = two_s = bare_cpu = float("inf")
            memory: dict = {}
            for _ in range(args.rounds):
                wall, cpu, reference = bare(pipeline, spec, frame)
                if wall < bare_s:
                    bare_s, bare_cpu = wall, cpu
                wall, report, parquet_bytes = one_worker(pipeline, spec, frame, args.chunk_size)
                one_s = min(one_s, wall)
                assert report.ok, report.message
                difference = float(np.max(np.abs(report.values - reference)))
                del reference
                wall, report_two, memory_two = two_workers(
                    pipeline, spec, frame, args.chunk_size, args.workers, scratch
                )
                assert np.array_equal(report_two.values, report.values), "workers disagree with one process"
                if wall < two_s:
                    two_s, memory = wall, memory_two
            estimate = estimate_cost(pipeline, rows)
            result = {
                "algorithm": algorithm,
                "hyperparameters": hyperparameters,
                "rows": rows,
                "chunks": -(-rows // args.chunk_size),
                "bare_s": round(bare_s, 3),
                "bare_cpu_s": round(bare_cpu, 3),
                "service_1_worker_s": round(one_s, 3),
                "service_2_workers_s": round(two_s, 3),
                "ratio_1_worker": round(one_s / bare_s, 3),
                "speedup_2_workers": round(bare_s / two_s, 3),
                "max_abs_difference_vs_bare": difference,
                "additivity_error": report.additivity_error,
                "parquet_mb": round(parquet_bytes / 2**20, 2),
                "worker_memory": sorted(memory.values(), key=lambda m: -m["chunks"]),
                "estimated_s": round(estimate["seconds"], 2),
            }
            results.append(result)
            print(json.dumps(result), flush=True)
            del frame, report, report_two
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": environment_versions(),
        "chunk_size": args.chunk_size,
        "workers": args.workers,
        "rounds": args.rounds,
        "results": results,
    }


def table(summary: dict) -> str:
    lines = [
        "| model | rows | bare | service, 1 worker | ratio | service, 2 workers | speed-up | "
        "worker peak RSS (growth after start-up) | max abs diff vs bare |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in summary["results"]:
        memory = ", ".join(f"{m['peak_mb']:.0f} MB (+{m['peak_mb'] - m['started_mb']:.0f})" for m in r["worker_memory"])
        lines.append(
            f"| {r['algorithm']} | {r['rows']:,} | {r['bare_s']:.2f} s | {r['service_1_worker_s']:.2f} s | "
            f"{r['ratio_1_worker']:.2f}x | {r['service_2_workers_s']:.2f} s | {r['speedup_2_workers']:.2f}x | "
            f"{memory} | {r['max_abs_difference_vs_bare']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["gradient_boosting", "random_forest"],
                        choices=["gradient_boosting", "random_forest"])
    parser.add_argument("--hgb-iter", type=int, default=100)
    parser.add_argument("--hgb-depth", type=int, default=3)
    parser.add_argument("--rf-trees", type=int, default=10)
    parser.add_argument("--rf-depth", type=int, default=6)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "shap.json")
    args = parser.parse_args()
    started = time.perf_counter()
    summary = run(args)
    summary["total_s"] = round(time.perf_counter() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print()
    print(table(summary))
    ok_one = all(r["ratio_1_worker"] <= ONE_WORKER_TARGET for r in summary["results"])
    ok_two = all(r["speedup_2_workers"] >= TWO_WORKER_TARGET for r in summary["results"])
    print(f"\n1 worker <= {ONE_WORKER_TARGET}x bare: {'yes' if ok_one else 'NO'}; "
          f"2 workers >= {TWO_WORKER_TARGET}x faster than bare: {'yes' if ok_two else 'NO'}; "
          f"total {summary['total_s']} s")


if __name__ == "__main__":
    main()

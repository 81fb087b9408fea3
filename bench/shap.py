"""Benchmark: SHAP reports through the service, run by real Celery workers, against a bare
``shap.TreeExplainer(model).shap_values(X)`` on the same model and rows, in one run.

Run by hand (it is not a test; about 15 minutes with the defaults)::

    .venv/bin/python bench/shap.py
    .venv/bin/python bench/shap.py --rows 10000 100000 --models gradient_boosting   # quicker

Models: HistGradientBoosting (service defaults: 100 iterations, depth 3) and a random forest
(10 trees, depth 6, so that a million rows stay within minutes), both trained through the service
on 40,000 rows. Rows: for each count (10k, 100k, 1M by default) a dataset version of its own is
registered (same generator, another seed) and the report explains all of its rows
(``explanation_job_create(dataset_version=..., max_rows=rows)``). The data are numeric only
(bench/synthetic.py), so the bare call is a valid reference for HistGradientBoosting.

Service time: ``explanation_job_create`` → the ``explanation_report.finished`` audit event, which
the merging worker writes in the transaction that stores the report. Everything a report does is
inside: the cost estimate, planning, staging the rows of each chunk, the chunk tasks, hand-over
files, the merge into the values Parquet, database rows and audit events. The plots are a
follow-up task ("with plots" adds them). Bare time: the call above on the already preprocessed
matrix, explainer construction included, in this process.

Phases: one worker process (concurrency 1, 2 OpenMP/BLAS threads), then two worker processes
(1 thread each), with ``EXPLAIN_PARALLELISM`` set to match (a report is cut into a multiple of
that many chunks of at most ``--chunk`` rows). Each phase starts with warm-up reports that give
every worker a chunk of each model (imports, artifact and explainer caches). Each measurement
is a bare call followed by a report, ``--repeats`` times (``--big-repeats`` at a million rows
or more), so drifts in the speed of this shared machine hit both sides; medians against
medians.

Memory: the peak resident set (``VmHWM``) of every worker's pool process over the runs of one
model and row count, reset before them through ``/proc/<pid>/clear_refs``; printed with its growth
over the resident set at the reset. And per task: the workers log each task's peak resident set
and its growth over the task's start (governance/celery.py); the largest growth per kind of
task. Correctness: the stored values of the last report are compared with the bare call's,
row by row (max |difference|).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# This file is called shap.py: without this, "import shap" would import the benchmark itself.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

TRAIN_ROWS = 40_000
TASK_PEAK = re.compile(r"task (?P<task>[\w.]+)\[[^]]*\] peak resident set \d+ MB, (?P<growth>[+-]\d+) MB")
TASK_NAMES = {"riskmodels.run_job": "coordinator", "riskmodels.run_job_chunk": "chunk (the last also merges)",
              "riskmodels.render_explanation_plots": "plots"}
MODELS = {
    "gradient_boosting": {},
    "random_forest": {"n_estimators": 10, "max_depth": 6},
}
ONE_WORKER_TARGET = 1.2  # report time / bare time, at most
TWO_WORKER_TARGET = 1.5  # bare time / report time with two workers, at least


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Workers:
    """``count`` Celery worker processes, each with one pool process, on the embedded defaults."""

    def __init__(self, count: int, threads: int, logs: Path) -> None:
        env = {**os.environ, "CELERY_WORKER_CONCURRENCY": "1", "WORKER_THREADS": str(threads)}
        self.logs = [logs / f"worker-{count}-{i}.log" for i in range(count)]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "governance", "worker", "--loglevel=INFO", "--concurrency=1",
             f"--hostname=bench{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, start_new_session=True, stdout=log.open("wb"), stderr=subprocess.STDOUT)
            for i, log in enumerate(self.logs)]

    def log_marks(self) -> list[int]:
        return [log.stat().st_size for log in self.logs]

    def task_peaks(self, marks: list[int]) -> dict[str, float]:
        """Largest growth of the resident set within one task, per task name, since ``marks`` (the workers log it)."""
        growth: dict[str, float] = {}
        for log, mark in zip(self.logs, marks, strict=True):
            with log.open("rb") as handle:
                handle.seek(mark)
                for line in handle.read().decode(errors="replace").splitlines():
                    found = TASK_PEAK.search(line)
                    if found:
                        name = TASK_NAMES.get(found["task"], found["task"])
                        growth[name] = max(growth.get(name, 0.0), float(found["growth"]))
        return growth

    def pool_pids(self) -> list[int]:
        pids = []
        for proc in self.procs:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            pids += [int(c) for c in children]
        return pids

    def reset_peaks(self) -> dict[int, float]:
        base = {}
        for pid in self.pool_pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            base[pid] = _status_mb(pid, "VmRSS")
        return base

    def peaks(self, base: dict[int, float]) -> list[tuple[float, float]]:
        """(peak MB, growth MB) per pool process since ``reset_peaks``."""
        return [(_status_mb(pid, "VmHWM"), _status_mb(pid, "VmHWM") - rss) for pid, rss in base.items()]

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=120)


def main() -> None:  # noqa: C901, PLR0915 - one linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk", type=int, default=25_000, help="EXPLAIN_CHUNK_ROWS")
    parser.add_argument("--repeats", type=int, default=3, help="measured reports per model, row count and phase")
    parser.add_argument("--big-repeats", type=int, default=1, help="the same, from a million rows up")
    parser.add_argument("--workers", type=int, nargs="+", choices=[1, 2], default=[1, 2],
                        help="the phases to run: one worker process, two")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-shap-"))
    os.environ.update({"DEBUG": "1", "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings",
                       "EXPLAIN_CHUNK_ROWS": str(args.chunk), "EXPLAIN_MAX_ROWS": str(max(args.rows)),
                       "EXPLAIN_BUDGET_SECONDS": "100000"})
    import django

    django.setup()
    import numpy as np
    import shap
    from django.core.files.storage import default_storage
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from governance.accounts import team_get_or_create, user_upsert
    from governance.models import AuditEvent
    from riskmodels.ml.explain.parquet import read_values
    from riskmodels.ml.persistence import load_artifact
    from riskmodels.ml.pipelines import TrainingSpec, prepare_features
    from riskmodels.jobs.kinds import job_execute
    from riskmodels.models import ExplanationReport, Job, JobChunk, JobStatus, ModelVersion
    from riskmodels.services.datasets import dataset_version_create
    from riskmodels.services.explanations import explanation_job_create
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.training import training_job_create
    from riskmodels.storage import dataset_frame

    sys.path.insert(0, str(HERE))
    from synthetic import make_numeric_data

    bench_team = team_get_or_create(name="bench").slug  # benchmark objects in their own team
    dev, _ = user_upsert(username="bench-dev", role="developer", teams=[bench_team])

    def register(name: str, rows: int, seed: int):  # noqa: ANN202
        path = var / f"{name}.parquet"
        make_numeric_data(rows, path, seed=seed)
        version, _ = dataset_version_create(actor=dev, name=name, source=str(path), filename=path.name,
                                            target="default")
        path.unlink()
        return version

    training = register("train", TRAIN_ROWS, seed=3)
    versions, pipelines = {}, {}
    for algorithm, hyperparameters in MODELS.items():
        if algorithm not in args.models:
            continue
        registered = registered_model_create(actor=dev, name=f"bench-{algorithm}", owner_team="bench",
                                             purpose="benchmark")
        job = training_job_create(actor=dev, registered_model=registered, dataset_version=training,
                                  request={"algorithm": algorithm, "hyperparameters": hyperparameters})
        job_execute(job_id=job.pk)
        versions[algorithm] = version = ModelVersion.objects.get(registered_model=registered)
        pipelines[algorithm] = load_artifact(default_storage.open(version.artifact_path).read(),
                                             expected_sha256=version.artifact_sha256)
    datasets = {rows: register(f"explain-{rows}", rows, seed=100 + i) for i, rows in enumerate(args.rows)}
    # Two chunks at the smallest size: with two workers, both run one (imports, artifact, explainer).
    warmup = register("warm-up", 4_000, seed=99)

    def matrix(algorithm: str, rows: int):  # noqa: ANN202
        version = versions[algorithm]
        spec = TrainingSpec.from_dict(version.spec)
        pipeline = pipelines[algorithm]
        return pipeline[:-1].transform(prepare_features(dataset_frame(datasets[rows]), spec))

    def bare(algorithm: str, X) -> tuple[float, np.ndarray]:  # noqa: ANN001
        started = time.perf_counter()
        values = shap.TreeExplainer(pipelines[algorithm][-1]).shap_values(X)
        elapsed = time.perf_counter() - started
        values = np.asarray(values)
        return elapsed, values[..., 1] if values.ndim == 3 else values

    def event_time(action: str, report: ExplanationReport) -> float:
        return AuditEvent.objects.get(action=action, target_id=str(report.pk)).created_at.timestamp()

    def report(algorithm: str, dataset, rows: int) -> tuple[float, float, ExplanationReport, list]:  # noqa: ANN001
        started = time.time()
        job = explanation_job_create(actor=dev, model_version=versions[algorithm], dataset_version=dataset,
                                     max_rows=rows)
        # Poll gently (a tight poll would take CPU from the workers); end times come from audit events.
        while (status := Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()) not in (
                JobStatus.SUCCEEDED, JobStatus.FAILED):
            time.sleep(0.1)
        assert status == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
        done = ExplanationReport.objects.get(job=job)
        assert done.n_rows == rows, (done.n_rows, rows)
        while not AuditEvent.objects.filter(action="explanation_report.plots_rendered",
                                            target_id=str(done.pk)).exists():
            time.sleep(0.1)
        chunks = list(JobChunk.objects.filter(job=job).order_by("index").values_list("seconds", flat=True))
        return (event_time("explanation_report.finished", done) - started,
                event_time("explanation_report.plots_rendered", done) - started, done, chunks)

    def max_diff(done: ExplanationReport, bare_values: np.ndarray, algorithm: str) -> float:
        with default_storage.open(done.values_path, "rb") as handle:
            _, _, positions, _, values, features = read_values(handle)
        encoded = list(pipelines[algorithm][:-1].get_feature_names_out())
        columns = [next(j for j, e in enumerate(encoded) if e == f or e.endswith("__" + f)) for f in features]
        return float(np.max(np.abs(values - bare_values[positions][:, columns])))

    results: dict[tuple[str, int, int], dict] = {}
    print(f"models {', '.join(versions)}; rows {', '.join(f'{r:,}' for r in args.rows)}; chunks of {args.chunk:,}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    from django.conf import settings

    for workers, threads in ((w, 2 // w) for w in args.workers):
        # As a deployment would say how many worker processes share its reports (chunks per report).
        settings.EXPLAIN_PARALLELISM = workers
        pool = Workers(workers, threads, var)
        try:
            time.sleep(8)
            for algorithm in versions:  # warm-up (also lets the queued evaluation jobs of training run)
                for _ in range(workers):
                    report(algorithm, warmup, warmup.n_rows)
            while Job.objects.exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).exists():
                time.sleep(0.2)
            for algorithm in versions:
                for rows in args.rows:
                    X = matrix(algorithm, rows)
                    bare(algorithm, X[:1000])  # page in the explainer's code outside the clock
                    base, marks = pool.reset_peaks(), pool.log_marks()
                    runs = []
                    for _ in range(args.big_repeats if rows >= 1_000_000 else args.repeats):
                        b, values = bare(algorithm, X)
                        r, p, done, chunks = report(algorithm, datasets[rows], rows)
                        runs.append((b, r, p))
                        print(f"  {workers} worker(s) {algorithm} {rows:>9,} rows: bare {b:6.2f}s  report {r:6.2f}s  "
                              f"with plots {p:6.2f}s  ({len(chunks)} chunks, "
                              f"{min(chunks):.2f}-{max(chunks):.2f}s each)", flush=True)
                    peaks, task_peaks = pool.peaks(base), pool.task_peaks(marks)
                    diff = max_diff(done, values, algorithm)
                    del X, values
                    results[(algorithm, rows, workers)] = {
                        "bare": median(x[0] for x in runs), "report": median(x[1] for x in runs),
                        "plots": median(x[2] for x in runs), "peaks": peaks, "tasks": task_peaks, "diff": diff}
        finally:
            pool.stop()

    print(f"\nload average at the end {os.getloadavg()[0]:.2f}\n")
    print("| model | rows | bare (1 w) | 1 worker | ratio (≤ 1.2) | bare (2 w) | 2 workers | faster (≥ 1.5) "
          "| worker peak RSS MB (growth), 1 w | 2 w | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    empty = {"bare": float("nan"), "report": float("nan"), "plots": float("nan"), "peaks": [], "tasks": {},
             "diff": float("nan")}
    for key in [(a, r, w) for a in versions for r in args.rows for w in (1, 2)]:
        results.setdefault(key, empty)
    for algorithm in versions:
        for rows in args.rows:
            one, two = results[(algorithm, rows, 1)], results[(algorithm, rows, 2)]
            mem = [", ".join(f"{peak:.0f} (+{growth:.0f})" for peak, growth in r["peaks"]) for r in (one, two)]
            print(f"| {algorithm} | {rows:,} | {one['bare']:.2f} s | {one['report']:.2f} s | "
                  f"{one['report'] / one['bare']:.2f}× | {two['bare']:.2f} s | {two['report']:.2f} s | "
                  f"{two['bare'] / two['report']:.2f}× | {mem[0]} | {mem[1]} | {np.nanmax([one['diff'], two['diff']]):.1e} |")
    print("\nlargest growth of a worker's resident set within one task (MB over the task's start):")
    print("| model | workers | task | " + " | ".join(f"{r:,} rows" for r in args.rows) + " |")
    print("|---|---:|---|" + "---:|" * len(args.rows))
    for algorithm in versions:
        for workers in (1, 2):
            for task in TASK_NAMES.values():
                growths = [results[(algorithm, r, workers)]["tasks"].get(task, float("nan")) for r in args.rows]
                print(f"| {algorithm} | {workers} | {task} | " + " | ".join(f"{g:+.0f}" for g in growths) + " |")
    print("\nwith plots (report + follow-up plots task): " + "; ".join(
        f"{a} {r:,}: {results[(a, r, 1)]['plots'] / results[(a, r, 1)]['bare']:.2f}× (1 w), "
        f"{results[(a, r, 2)]['bare'] / results[(a, r, 2)]['plots']:.2f}× faster (2 w)"
        for a in versions for r in args.rows))


if __name__ == "__main__":
    main()

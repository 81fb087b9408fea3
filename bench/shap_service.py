"""Benchmark: a SHAP report through the service (API-level request → report stored, real Celery
workers) against a bare ``shap.TreeExplainer(model).shap_values(X)`` on the same model and rows.

Run by hand:  .venv/bin/python bench/shap_service.py [--rows 100000] [--chunk 25000] [--repeats 3]

The data are numeric only (20 features), so the bare call is a valid reference for
HistGradientBoosting (shap 0.51 mis-reads its categorical splits; see bench/README.md). The
service side includes everything a report does: planning, staging the rows of each chunk,
explaining, storing chunk files, merging, the values Parquet, the database rows and audit
events ("report"), and then the plots ("with its plots"). Measured with one worker process
(2 BLAS/OpenMP threads) and with two worker processes (1 thread each): one warm-up report,
then --repeats reports, each after a bare call in this process; medians against medians.
End times come from the audit events the workers write.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/shap.py would shadow the shap package: import from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def make_data(rows: int, path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    data = {f"x{i}": rng.normal(size=rows) for i in range(20)}
    logit = data["x0"] - 0.8 * data["x1"] + 0.5 * data["x2"] * data["x3"] - 1.0
    data["default"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    pd.DataFrame(data).to_parquet(path)


def start_workers(count: int, threads: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "CELERY_WORKER_CONCURRENCY": "1", "WORKER_THREADS": str(threads)}
    return [subprocess.Popen([sys.executable, "-m", "celery", "-A", "governance", "worker", "--loglevel=WARNING",
                              "--concurrency=1", f"--hostname=bench{i}@%h", "--without-gossip", "--without-mingle",
                              "--without-heartbeat"], cwd=ROOT, env=env, start_new_session=True)
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the test split to explain")
    parser.add_argument("--chunk", type=int, default=25_000)
    parser.add_argument("--repeats", type=int, default=3, help="measured reports per worker setting")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-shap-service-"))
    os.environ.update({"DEBUG": "1", "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings",
                       "EXPLAIN_CHUNK_ROWS": str(args.chunk), "EXPLAIN_DEFAULT_MAX_ROWS": str(args.rows),
                       "EXPLAIN_BUDGET_SECONDS": "100000"})
    import django

    django.setup()
    import shap
    from django.core.files.storage import default_storage
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from governance.accounts import user_upsert
    from riskmodels.ml.persistence import load_artifact
    from riskmodels.ml.pipelines import TrainingSpec, prepare_features
    from riskmodels.ml.training import split
    from riskmodels.models import ExplanationChunk, ExplanationReport, Job, JobStatus, ModelVersion
    from riskmodels.services.datasets import dataset_version_create
    from riskmodels.services.explanations import explanation_job_create
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.storage import dataset_frame
    from riskmodels.services.training import training_job_create, training_job_run

    # test_size 0.5 of 2 x rows: the test split holds `rows` rows.
    path = var / "bench.parquet"
    make_data(2 * args.rows, path)
    dev, _ = user_upsert(username="bench-dev", role="developer")
    dataset, _ = dataset_version_create(actor=dev, name="bench", source=str(path), filename=path.name, target="default")
    model = registered_model_create(actor=dev, name="bench-model", owner_team="bench", purpose="benchmark")
    job = training_job_create(actor=dev, registered_model=model, dataset_version=dataset,
                              request={"algorithm": "gradient_boosting", "test_size": 0.5})
    training_job_run(job_id=job.pk)
    version = ModelVersion.objects.get()
    spec = TrainingSpec.from_dict(version.spec)
    pipeline = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    frame = dataset_frame(dataset)
    _, test_idx = split(frame, spec)
    X = pipeline[:-1].transform(prepare_features(frame.iloc[test_idx], spec))

    def bare() -> float:
        started = time.perf_counter()
        shap.TreeExplainer(pipeline[-1]).shap_values(X)
        return time.perf_counter() - started

    from governance.models import AuditEvent

    def event_time(action: str, **target: object) -> float:
        return AuditEvent.objects.get(action=action, **target).created_at.timestamp()

    def service(workers: int, threads: int, repeats: int) -> tuple[list[float], list[float], list[float]]:
        procs = start_workers(workers, threads)
        reports, with_plots, bares = [], [], []
        try:
            time.sleep(8)
            # One warm-up report so every worker has imported and loaded everything.
            for attempt in range(repeats + 1):
                if attempt:
                    # Alternate with the bare call, so drifts in machine speed (a shared VM) hit both.
                    bares.append(bare())
                started = time.time()
                report_job = explanation_job_create(actor=dev, model_version=version)
                # Poll gently (a tight poll would steal CPU from the workers) and take the end
                # times from the audit events the workers write inside the finishing transactions.
                while (status := Job.objects.filter(pk=report_job.pk).values_list("status", flat=True).get()) \
                        not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                    time.sleep(0.1)
                assert status == JobStatus.SUCCEEDED, Job.objects.get(pk=report_job.pk).error
                report = ExplanationReport.objects.get(job=report_job)
                while not AuditEvent.objects.filter(action="explanation_report.plots_rendered",
                                                    target_id=str(report.pk)).exists():
                    time.sleep(0.1)
                if attempt:
                    reports.append(event_time("explanation_report.finished", target_id=str(report.pk)) - started)
                    with_plots.append(event_time("explanation_report.plots_rendered", target_id=str(report.pk)) - started)
                    chunks = list(ExplanationChunk.objects.filter(job=report_job).values_list("seconds", flat=True))
                    print(f"  {workers} worker(s), run {attempt}: bare {bares[-1]:.2f}s, report {reports[-1]:.2f}s, "
                          f"with plots {with_plots[-1]:.2f}s  ({len(chunks)} chunk tasks took "
                          f"{', '.join(f'{c:.2f}' for c in chunks)}s)")
            return reports, with_plots, bares
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)

    from statistics import median

    print(f"explaining {len(X)} rows, {X.shape[1]} features, chunks of {args.chunk}")
    bare()  # warm-up: the first call in a process pays for page faults and imports
    for label, (workers, threads) in (("1 worker ", (1, 2)), ("2 workers", (2, 1))):
        reports, with_plots, bares = service(workers, threads, args.repeats)
        b, r, p = median(bares), median(reports), median(with_plots)
        print(f"bare shap.TreeExplainer during this phase: median {b:.2f}s (runs {', '.join(f'{x:.2f}' for x in bares)})")
        if workers == 1:
            print(f"service, {label}: report {r:.2f}s  ratio {r / b:.2f}x the bare call (target <= 1.2);"
                  f"  with its plots {p:.2f}s ({p / b:.2f}x)")
        else:
            print(f"service, {label}: report {r:.2f}s  {b / r:.2f}x faster than the bare call (target >= 1.5);"
                  f"  with its plots {p:.2f}s ({b / p:.2f}x)")


if __name__ == "__main__":
    main()

"""Benchmark: a training job (API-level submit → succeeded, real worker) vs a bare ``pipeline.fit``.

Run by hand:  .venv/bin/python bench/training.py [--rows 100000] [--repeats 7]

Both sides fit HistGradientBoosting (default hyperparameters of the service) on the same
100k x 30 synthetic credit data (22 numeric, 8 categorical) and the same training split:
the bare side calls ``build_pipeline(spec).fit(X_train, y_train)`` in this process; the
service side submits a training job to a real Celery worker (embedded defaults: SQLite and
the filesystem broker) and waits until the job row says succeeded. Both use both cores
(the worker runs with concurrency 1, so WORKER_THREADS=2). After one warm-up job, each
repeat runs a bare fit, a job and another bare fit, so drifts in machine speed (this is a
shared VM) hit both sides; prints the medians, the ratio, and best against best.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_data(rows: int, path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    data = {f"num_{i}": rng.normal(size=rows) for i in range(22)}
    for i in range(8):
        data[f"cat_{i}"] = rng.choice([f"level_{j}" for j in range(6 + i)], size=rows)
    logit = data["num_0"] - 0.7 * data["num_1"] + 0.4 * data["num_2"] * data["num_3"] + \
        (data["cat_0"] == "level_1") * 0.8 - 1.2
    data["default"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    pd.DataFrame(data).to_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-training-"))
    os.environ.update({"DEBUG": "1", "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings",
                       "CELERY_WORKER_CONCURRENCY": "1"})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from governance.accounts import team_get_or_create, user_upsert
    from governance.models import AuditEvent
    from riskmodels.ml.pipelines import TrainingSpec, build_pipeline, prepare_features
    from riskmodels.ml.training import binary_target, split
    from riskmodels.models import Job, JobStatus
    from riskmodels.services.datasets import dataset_version_create
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.training import training_job_create
    from riskmodels.storage import dataset_frame

    data_path = var / "bench.parquet"
    make_data(args.rows, data_path)
    bench_team = team_get_or_create(name="bench").slug  # benchmark objects in their own team
    dev, _ = user_upsert(username="bench-dev", role="developer", teams=[bench_team])
    dataset, _ = dataset_version_create(actor=dev, name="bench", source=str(data_path), filename="bench.parquet",
                                        target="default")
    model = registered_model_create(actor=dev, name="bench-model", owner_team="bench", purpose="benchmark")

    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "governance", "worker", "--loglevel=WARNING",
                               "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              cwd=ROOT, env=os.environ.copy(), start_new_session=True)
    spec = None

    def run_job() -> tuple[float, dict[str, float], str]:
        started = time.time()
        job = training_job_create(actor=dev, registered_model=model, dataset_version=dataset,
                                  request={"algorithm": "gradient_boosting"})
        # Poll gently (a tight poll would steal CPU from the worker's OpenMP threads) and take
        # the end time from the job's last audit event, which the worker writes as the last
        # statement of the transaction that marks the job succeeded.
        while (status := Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()) not in (
                JobStatus.SUCCEEDED, JobStatus.FAILED):
            time.sleep(0.1)
        assert status == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
        done = AuditEvent.objects.get(action="train_job.succeeded", target_id=str(job.pk)).created_at
        row = Job.objects.get(pk=job.pk)
        hops = (f"submit→claimed {row.started_at.timestamp() - started:.3f}, "
                f"finishing transaction {done.timestamp() - row.finished_at.timestamp():.3f}")
        # Let the follow-up evaluation job finish so it does not compete with the bare fit.
        while Job.objects.filter(kind="evaluate").exclude(status__in=["succeeded", "failed"]).exists():
            time.sleep(0.05)
        nonlocal spec
        spec = TrainingSpec.from_dict(job.params["spec"])
        return done.timestamp() - started, row.produced_version.timings, hops

    def bare_fit() -> float:
        assert spec is not None
        frame = dataset_frame(dataset)
        X, y = prepare_features(frame, spec), binary_target(frame, spec)
        train_idx, _ = split(frame, spec)
        X_train, y_train = X.iloc[train_idx], y[train_idx]
        pipeline = build_pipeline(spec)
        t = time.perf_counter()
        pipeline.fit(X_train, y_train)
        return time.perf_counter() - t

    try:
        time.sleep(6)  # let the worker boot before the clock starts
        run_job()  # warm-up: the worker's first job pays its process's one-time imports
        service, fits = [], []
        for attempt in range(args.repeats):
            # Alternate the two sides so drifts in machine speed hit both alike.
            fits.append(bare_fit())
            elapsed, timings, hops = run_job()
            service.append(elapsed)
            fits.append(bare_fit())
            print(f"run {attempt + 1}: job submit→succeeded {elapsed:.3f}s   bare fits {fits[-2]:.3f}s, {fits[-1]:.3f}s   "
                  f"(worker: {', '.join(f'{k} {v:.3f}' for k, v in timings.items())}; {hops})")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    s, f = statistics.median(service), statistics.median(fits)
    print(f"\nrows={args.rows} features=30  median job {s:.3f}s  median bare fit {f:.3f}s  ratio {s / f:.3f}"
          f"  (best {min(service):.3f}s vs {min(fits):.3f}s: {min(service) / min(fits):.3f})  target <= 1.10")


if __name__ == "__main__":
    main()

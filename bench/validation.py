"""Benchmark: the validation battery job on a 100,000-row dataset, against the bare library work it rests on.

Run by hand (not a test)::

    .venv/bin/python bench/validation.py [--rows 100000] [--repeats 3]

A HistGradientBoosting model (service defaults) is trained through the service on seeded
synthetic rows (bench/synthetic.py, 20 numeric features); its test split is a quarter of
them. Service time: ``job_execute`` of the battery job in this process (read the dataset with
its hash checked, split, score, explain 2,000 rows, the six tests, store the run and its
proposed findings, audit). Bare time: what the tests cannot do without, in the same process:
``predict_proba`` on the scored rows once plus once per neutralised feature and once with
noise, and ``shap.TreeExplainer(model).shap_values`` on 2,000 preprocessed rows. The ratio
says what the battery's own bookkeeping and statistics cost on top.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # This folder holds shap.py: keep it off the path so "import shap" finds the library.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(ROOT))
    var = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    os.environ.update({"DEBUG": "1", "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings"})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    call_command("migrate", verbosity=0)
    import numpy as np
    import shap

    from governance.accounts import team_get_or_create, user_upsert
    from governance.celery import app
    from riskmodels.jobs.kinds import job_execute
    from riskmodels.ml.pipelines import TrainingSpec, prepare_features
    from riskmodels.ml.training import split
    from riskmodels.models import Evaluation, Job, JobKind, JobStatus, ModelVersion, ValidationRun
    from riskmodels.services.datasets import dataset_version_create
    from riskmodels.services.explanations.cache import pipeline_load
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.training import training_job_create
    from riskmodels.services.validation import EXPLAIN_ROWS, validation_job_queue
    from riskmodels.storage import dataset_frame

    app.send_task = lambda *_, **__: None  # this process runs each job itself
    sys.path.insert(0, str(ROOT / "bench"))
    from synthetic import make_numeric_data

    path = var / "bench.parquet"
    make_numeric_data(args.rows, path)
    bench_team = team_get_or_create(name="bench").slug  # benchmark objects in their own team
    dev, _ = user_upsert(username="bench-dev", role="developer", teams=[bench_team])
    dataset, _ = dataset_version_create(actor=dev, name="bench", source=str(path), filename=path.name, target="default")
    model = registered_model_create(actor=dev, name="bench-model", owner_team="bench", purpose="benchmark")
    job = training_job_create(actor=dev, registered_model=model, dataset_version=dataset,
                              request={"algorithm": "gradient_boosting"})
    job_execute(job_id=job.pk)
    for queued in Job.objects.filter(kind=JobKind.EVALUATE, status=JobStatus.QUEUED):
        job_execute(job_id=queued.pk)
    version = ModelVersion.objects.get()
    evaluation = Evaluation.objects.get(model_version=version)
    Job.objects.filter(kind=JobKind.VALIDATE).delete()  # measured below instead

    spec = TrainingSpec.from_dict(version.spec)
    pipeline = pipeline_load(version)
    frame = dataset_frame(version.dataset_version)
    _, test_idx = split(frame, spec)
    X = prepare_features(frame.iloc[test_idx], spec)
    service, bare, seconds_inside = [], [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        pipeline.predict_proba(X)
        for name in X.columns:  # one feature neutralised at a time
            pipeline.predict_proba(X.assign(**{name: X[name].median()}))
        pipeline.predict_proba(X + np.random.default_rng(0).normal(0, 0.05, X.shape))
        matrix = pipeline[:-1].transform(X.iloc[:EXPLAIN_ROWS])
        shap.TreeExplainer(pipeline[-1]).shap_values(matrix)
        bare.append(time.perf_counter() - started)

        with transaction.atomic():
            battery = validation_job_queue(version=version, evaluation=evaluation, requested_by=dev,
                                           requested_by_username=dev.username)
        started = time.perf_counter()
        job_execute(job_id=battery.pk)
        service.append(time.perf_counter() - started)
        run = ValidationRun.objects.get(job=battery)
        seconds_inside.append(run.seconds)
        tests = ", ".join(f"{r['name']} {r['outcome']}" for r in run.results)
        print(*(f"  {r['name']}: {r['message']}" for r in run.results if r["outcome"] != "pass"), sep="\n")
        print(f"battery {service[-1]:.2f} s (inside the work {run.seconds:.2f} s)   bare {bare[-1]:.2f} s   "
              f"outcome {run.outcome}: {tests}")
    ratio = statistics.median(service) / statistics.median(bare)
    print(f"rows={args.rows} test rows={len(X)} scored={run.n_rows}  median battery {statistics.median(service):.2f} s  "
          f"median bare {statistics.median(bare):.2f} s  ratio {ratio:.2f}")


if __name__ == "__main__":
    main()

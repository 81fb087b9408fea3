"""Load run: a bounded, fixed-rate mix of API requests against real gunicorn and real Celery
workers on loopback, then a reconciliation of jobs and audit events. Run by hand; not a test.

    .venv/bin/python bench/load.py                                   # 60 s, SQLite + filesystem broker
    .venv/bin/python bench/load.py --duration 300 --rate 4           # the full run
    .venv/bin/python bench/load.py --backend ci --pg-db gov_load     # PostgreSQL + its own Redis (port 6390)
    .venv/bin/python bench/load.py --backend ci --chaos              # kill -9 one worker, restart Redis mid-run

Set-up (a temporary VAR_DIR): ``migrate``, ``demo_setup`` (the ``retail-pd`` champion, its
scoring policy and one token per role), a registered model ``load-pd`` and a 200-row dataset
``load-small`` uploaded through the API; then celery beat (the reaper every 5 s, a lease of
``--lease`` s), ``--workers`` worker processes (one slot, one thread each) and gunicorn (2
gthread workers × 4 threads). ``--backend ci`` starts its own ``redis-server`` on
``--redis-port`` (never the shared 6379, so it can be restarted freely) and drops and creates
the PostgreSQL database ``--pg-db``.

Load: one request every 1/``--rate`` s for ``--duration`` s (open loop: a slow answer does not
delay the next request), of a kind drawn with a fixed seed from ``--mix``: ``read`` (a list or a
detail: models, versions, jobs, dataset versions), ``upload`` (200 distinct rows of German Credit
as a new version of ``load-small``), ``train`` (a logistic regression of ``load-pd`` on
``load-small``; training queues its evaluation, which queues the validation battery) and
``score`` (one application scored by the champion, as the underwriter). ``--chaos`` SIGKILLs the
first worker's process group at 30% of the run, and (``--backend ci``) shuts Redis down without
saving at 50% and starts a new one 2 s later (everything queued in it is lost).

Reconciliation, after the load and a drain (at most ``--drain`` s for every job to end):

- jobs: every job created in the window (id above the last before it) is in a terminal state
  (succeeded, failed, cancelled); a job still queued or running is *stuck*. Every train request
  answered 202 named a job of the window, and the window has as many train jobs as 202 answers.
- audit: the events added in the window, counted by action, equal the expected ones:
  one ``dataset_version.registered`` per upload answered 201 (``dataset.created`` per dataset
  row of the window); one ``decisions.scored`` per score answered 200; per job of the window,
  its creation (``<kind>_job.created``), one ``<kind>_job.started`` per attempt, one
  ``<kind>_job.requeued`` per attempt after the first (the reaper's), and its terminal event
  (``<kind>_job.<status>``); one ``model_version.created``, ``evaluation.created``,
  ``validation_run.finished`` per row of the window. Reads change nothing and expect nothing.
- the chain: ``manage.py verify_audit_log`` exits 0.

Exit status 1 if any of these fails. ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # "import shap" must find the library
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
DATA = ROOT / "demo" / "german_credit.csv"
ROLES = {"personal_status_and_sex": "protected", "age_in_years": "protected", "foreign_worker": "protected"}
TERMINAL = ("succeeded", "failed", "cancelled")
CREATED_ACTION = {"explain": "explanation_report.requested"}  # every other kind: <kind>_job.created
ROW_EVENTS = {"ModelVersion": "model_version.created", "Evaluation": "evaluation.created",
              "ValidationRun": "validation_run.finished"}


def _helpers():  # noqa: ANN202
    sys.path.insert(0, str(HERE))
    try:
        import scoring as bench_scoring
    finally:
        sys.path[:] = [p for p in sys.path if p != str(HERE)]
    return bench_scoring


class Client:
    """Requests to the service, each on a new connection, timed and recorded by kind."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port, self.tokens = port, tokens
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def call(self, method: str, path: str, *, user: str = "dev", body: bytes | None = None,
             content_type: str = "application/json", timeout: float = 120) -> tuple[int, dict | None]:
        headers = {"Authorization": f"Token {self.tokens[user]}"}
        if body is not None:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None

    def timed(self, kind: str, method: str, path: str, **kw) -> tuple[int, dict | None]:  # noqa: ANN003
        started = time.perf_counter()
        try:
            status, answer = self.call(method, path, **kw)
        except OSError as exc:
            status, answer = 0, {"error": f"{type(exc).__name__}: {exc}"}
        record = {"kind": kind, "status": status, "seconds": time.perf_counter() - started, "at": time.time()}
        if status >= 400 or status == 0:
            record["error"] = json.dumps(answer)[:300] if answer else ""
        with self.lock:
            self.records.append(record)
        return status, answer


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
              f"Content-Type: text/csv\r\n\r\n".encode())
    out.write(content + b"\r\n" + f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Load:
    """What each kind of request sends."""

    def __init__(self, client: Client, frame, applications: list[dict], small_version: int,  # noqa: ANN001
                 champion: int, seed: int) -> None:
        self.client, self.frame, self.applications = client, frame, applications
        self.small_version, self.champion = small_version, champion
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.accepted_jobs: list[int] = []

    def _draw(self, fn):  # noqa: ANN001,ANN202
        with self.rng_lock:
            return fn(self.rng)

    def read(self, n: int) -> None:
        paths = ["/api/v1/models/", "/api/v1/model-versions/", "/api/v1/jobs/", "/api/v1/dataset-versions/",
                 f"/api/v1/model-versions/{self.champion}/", f"/api/v1/dataset-versions/{self.small_version}/",
                 "/api/v1/models/retail-pd/"]
        if self.accepted_jobs:
            paths.append(f"/api/v1/jobs/{self.accepted_jobs[-1]}/")
        path = self._draw(lambda r: r.choice(paths))
        self.client.timed("read", "GET", path)

    def upload(self, n: int) -> None:
        rows = sorted(self._draw(lambda r: r.sample(range(len(self.frame)), 200)))
        content = self.frame.iloc[rows].to_csv(index=False).encode()
        body, ctype = multipart({"name": "load-small", "target": "creditability", "roles": json.dumps(ROLES)},
                                f"load-{n}.csv", content)
        self.client.timed("upload", "POST", "/api/v1/datasets/", body=body, content_type=ctype)

    def train(self, n: int) -> None:
        body = json.dumps({"registered_model": "load-pd", "dataset_version": self.small_version,
                           "algorithm": "logistic_regression"}).encode()
        status, answer = self.client.timed("train", "POST", "/api/v1/training-jobs/", body=body)
        if status == 202:
            self.accepted_jobs.append(answer["id"])

    def score(self, n: int) -> None:
        application = {"reference": f"LOAD-{n:06d}", "features": self._draw(lambda r: r.choice(self.applications))}
        self.client.timed("score", "POST", "/api/v1/models/retail-pd/score/",
                          body=json.dumps({"applications": [application]}).encode(), user="underwriter")


def redis_start(procs, port: int, name: str, workdir: Path):  # noqa: ANN001,ANN201
    proc = procs.start(name, ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                              "--dir", str(workdir)], os.environ.copy())
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    raise RuntimeError(f"redis-server on port {port} did not start:\n{procs.log_tail(name)}")


def kill_a_busy_worker(load: Load, workers: list) -> str:
    """SIGKILL the process group of a worker while it runs a job (asking for one if none is running)."""
    from django.db import close_old_connections

    from riskmodels.models import Job

    groups = {proc.pid for proc in workers}
    deadline, asked = time.monotonic() + 30, 0.0
    while time.monotonic() < deadline:
        close_old_connections()
        for job_id, worker in Job.objects.filter(status="running").values_list("id", "worker"):
            # Job.worker is "host:thread id"; a prefork child runs tasks on its main thread, whose id is its pid.
            with contextlib.suppress(ValueError, ProcessLookupError):
                group = os.getpgid(int(worker.rsplit(":", 1)[1]))
                if group in groups:
                    os.killpg(group, signal.SIGKILL)
                    return f"the worker running job {job_id} killed (SIGKILL to its process group)"
        if time.monotonic() - asked > 2:
            load.train(200_000)
            asked = time.monotonic()
        time.sleep(0.05)
    raise RuntimeError("no job ran on a worker within 30 s: nothing to kill")


def summarize(records: list[dict]) -> dict:
    bench = _helpers()
    out = {}
    for kind in sorted({r["kind"] for r in records}):
        mine = [r for r in records if r["kind"] == kind]
        ok = [r for r in mine if 200 <= r["status"] < 300]
        seconds = [r["seconds"] for r in ok] or [float("nan")]
        out[kind] = {"sent": len(mine), "ok": len(ok), "errors": len(mine) - len(ok),
                     "statuses": dict(collections.Counter(str(r["status"]) for r in mine)),
                     "p50_ms": round(bench.percentile(seconds, 50) * 1000, 1),
                     "p99_ms": round(bench.percentile(seconds, 99) * 1000, 1),
                     "first_errors": [r["error"] for r in mine if "error" in r][:3]}
    return out


def reconcile(marks: dict, records: list[dict], accepted: list[int]) -> dict:  # noqa: C901 - one list of checks
    from django.db import close_old_connections

    from governance.models import AuditEvent
    from riskmodels.models import Dataset, Evaluation, Job, ModelVersion, ValidationRun

    close_old_connections()
    jobs = list(Job.objects.filter(id__gt=marks["job"]).values("id", "kind", "status", "attempts"))
    stuck = [j for j in jobs if j["status"] not in TERMINAL]
    ok = collections.Counter(r["kind"] for r in records if 200 <= r["status"] < 300)
    created = collections.Counter(r["kind"] for r in records if r["status"] == 201)
    expected: collections.Counter = collections.Counter()
    expected["dataset_version.registered"] += created["upload"]
    expected["dataset.created"] += Dataset.objects.filter(id__gt=marks["Dataset"]).count()
    expected["decisions.scored"] += ok["score"]
    for job in jobs:
        expected[CREATED_ACTION.get(job["kind"], f"{job['kind']}_job.created")] += 1
        expected[f"{job['kind']}_job.started"] += job["attempts"]
        expected[f"{job['kind']}_job.requeued"] += max(job["attempts"] - 1, 0)
        if job["status"] in TERMINAL:
            expected[f"{job['kind']}_job.{job['status']}"] += 1
    for model, action in ROW_EVENTS.items():
        table = {"ModelVersion": ModelVersion, "Evaluation": Evaluation, "ValidationRun": ValidationRun}[model]
        expected[action] += table.objects.filter(id__gt=marks[model]).count()
    expected = +expected
    found = collections.Counter(AuditEvent.objects.filter(seq__gt=marks["audit"]).values_list("action", flat=True))
    differences = {a: {"expected": expected[a], "found": found[a]} for a in sorted(set(expected) | set(found))
                   if expected[a] != found[a]}
    train_jobs = {j["id"] for j in jobs if j["kind"] == "train"}
    verify = subprocess.run([sys.executable, "manage.py", "verify_audit_log"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "jobs": {"accepted_by_api": len(accepted), "created": len(jobs),
                 "by_kind": dict(collections.Counter(j["kind"] for j in jobs)),
                 "finished": len(jobs) - len(stuck), "stuck": [f"{j['id']} {j['kind']} {j['status']}" for j in stuck],
                 "failed": sum(j["status"] == "failed" for j in jobs),
                 "retried": sum(j["attempts"] > 1 for j in jobs),
                 "accepted_missing": sorted(set(accepted) - train_jobs),
                 "train_jobs_without_202": len(train_jobs) - len(set(accepted) & train_jobs)},
        "audit": {"expected": sum(expected.values()), "found": sum(found.values()), "differences": differences,
                  "found_by_action": dict(sorted(found.items()))},
        "chain": {"verified": verify.returncode == 0, "output": (verify.stdout + verify.stderr).strip()[-300:]},
    }
    result["ok"] = (not stuck and not differences and verify.returncode == 0 and not result["jobs"]["accepted_missing"]
                    and result["jobs"]["train_jobs_without_202"] == 0)
    return result


def main() -> int:  # noqa: C901, PLR0912, PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--rate", type=float, default=3.0, help="requests per second, all kinds together")
    parser.add_argument("--mix", default="read=55,score=35,upload=6,train=4", help="kind=weight,...")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (one slot each)")
    parser.add_argument("--backend", choices=["embedded", "ci"], default="embedded",
                        help="embedded: SQLite + filesystem broker; ci: PostgreSQL + a Redis of its own")
    parser.add_argument("--chaos", action="store_true", help="kill -9 a worker at 30%%; restart Redis at 50%% (ci)")
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--pg-db", default="governance_load", help="dropped and created (--backend ci)")
    parser.add_argument("--lease", type=int, default=15, help="JOB_LEASE_SECONDS")
    parser.add_argument("--drain", type=float, default=180, help="seconds to wait for the jobs to end")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args()
    mix = {k: float(v) for k, v in (part.split("=") for part in args.mix.split(","))}
    if set(mix) - {"read", "upload", "train", "score"}:
        parser.error(f"--mix kinds are read, upload, train, score; got {', '.join(mix)}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = _helpers()
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    var = tmp / "var"
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND")}
    env.update({"VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "0",
                "SECRET_KEY": "bench-load-" + uuid.uuid4().hex, "ALLOWED_HOSTS": f"{HOST},localhost",
                "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
                "JOB_LEASE_SECONDS": str(args.lease), "JOB_REAP_INTERVAL_SECONDS": "5",
                "CELERY_WORKER_CONCURRENCY": "1", "WORKER_THREADS": "1", "EXPLAIN_PARALLELISM": str(args.workers)})
    procs = bench.Processes(tmp)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "events": []}
    started_at = time.monotonic()
    try:
        if args.backend == "ci":
            redis_start(procs, args.redis_port, "redis", tmp)
            for sql in (f'DROP DATABASE IF EXISTS "{args.pg_db}" WITH (FORCE)', f'CREATE DATABASE "{args.pg_db}"'):
                subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-q", "-c", sql], check=True, capture_output=True)
            env.update({"DATABASE_URL": f"postgres://postgres@{HOST}:5432/{args.pg_db}",
                        "CELERY_BROKER_URL": f"redis://{HOST}:{args.redis_port}/0",
                        # A short visibility timeout, so a killed worker's unacknowledged message comes
                        # back within the drain; the hard time limit must stay below it (settings refuse
                        # otherwise), and the soft one (60 s less) is ample for the run's tiny jobs.
                        "CELERY_VISIBILITY_TIMEOUT": "120", "CELERY_TASK_TIME_LIMIT": "110"})
        os.environ.update(env)

        def manage(*command: str) -> str:
            done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env={**env, "DEBUG": "1"},
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
            return done.stdout

        manage("migrate", "--noinput")
        demo = manage("demo_setup")
        tokens = {line.split()[0]: line.split("token=")[1].strip() for line in demo.splitlines() if "token=" in line}
        print(demo.strip().splitlines()[-1], flush=True)

        import django

        django.setup()
        import pandas as pd

        from riskmodels.models import ModelVersion, VersionStatus

        champion = ModelVersion.objects.get(registered_model__name="retail-pd", status=VersionStatus.CHAMPION)
        features, categorical = list(champion.spec["features"]), set(champion.spec.get("categorical", []))
        frame = pd.read_csv(DATA)
        applications = [{f: (str(v) if f in categorical else (v.item() if hasattr(v, "item") else v))
                         for f, v in zip(features, values, strict=True)}
                        for values in frame[features].head(300).itertuples(index=False)]

        port = bench.free_port()
        procs.start("beat", [sys.executable, "-m", "celery", "-A", "governance", "beat", "--loglevel=INFO",
                             "-s", str(var / "beat-schedule")], env)
        workers = [procs.start(f"worker-{i}", [sys.executable, "-m", "celery", "-A", "governance", "worker",
                                               "--loglevel=INFO", "--concurrency=1", "--pool=prefork",
                                               f"--hostname=load-{i}@%h", "--without-gossip", "--without-mingle"],
                               env) for i in range(args.workers)]
        web = procs.start("gunicorn", [sys.executable, "-m", "gunicorn", "governance.wsgi", "--bind", f"{HOST}:{port}",
                                       "--workers", "2", "--threads", "4", "--timeout", "120"], env)
        bench.wait_until_up("gunicorn", web, procs, "/api/v1/models/", port, {"Authorization": f"Token {tokens['dev']}"})
        client = Client(port, tokens)
        status, _ = client.call("POST", "/api/v1/models/", body=json.dumps(
            {"name": "load-pd", "owner_team": "load", "purpose": "load run"}).encode())
        assert status == 201, status
        body, ctype = multipart({"name": "load-small", "target": "creditability", "roles": json.dumps(ROLES)},
                                "load-small.csv", frame.head(200).to_csv(index=False).encode())
        status, small = client.call("POST", "/api/v1/datasets/", body=body, content_type=ctype)
        assert status == 201, (status, small)
        load = Load(client, frame, applications, small["id"], champion.pk, args.seed)
        for n in range(4):  # warm both gunicorn workers
            load.score(-1 - n)
        client.records.clear()

        from django.db import close_old_connections

        from governance.models import AuditEvent
        from riskmodels.models import Dataset, Evaluation, Job, ValidationRun

        def settle(deadline: float) -> list:
            """Wait until no job is queued or running; return those still not ended at the deadline."""
            while True:
                close_old_connections()
                open_jobs = list(Job.objects.exclude(status__in=TERMINAL).values_list("id", "kind", "status"))
                if not open_jobs or time.monotonic() > deadline:
                    return open_jobs
                time.sleep(1)

        left = settle(time.monotonic() + 120)  # the demo's own queued work, before the window opens
        if left:
            raise RuntimeError(f"jobs from the set-up did not end: {left}")
        marks = {"job": Job.objects.order_by("-id").values_list("id", flat=True).first() or 0,
                 "audit": AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0}
        for name, table in {"Dataset": Dataset, "ModelVersion": ModelVersion, "Evaluation": Evaluation,
                            "ValidationRun": ValidationRun}.items():
            marks[name] = table.objects.order_by("-id").values_list("id", flat=True).first() or 0
        print(f"set-up {time.monotonic() - started_at:.0f} s; load: {args.rate}/s for {args.duration:.0f} s, "
              f"mix {mix}, {args.workers} workers, {args.backend}{', chaos' if args.chaos else ''}", flush=True)

        kinds, weights = list(mix), list(mix.values())
        draw = random.Random(args.seed + 1)
        total = int(args.duration * args.rate)
        chaos = ([(0.3, "kill"), (0.5, "broker")] if args.backend == "ci" else [(0.3, "kill")]) if args.chaos else []
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            for n in range(total):
                at = t0 + n / args.rate
                while chaos and time.monotonic() - t0 >= chaos[0][0] * args.duration:
                    _, what = chaos.pop(0)
                    if what == "kill":
                        report["events"].append(f"{time.monotonic() - t0:.1f} s: " + kill_a_busy_worker(load, workers))
                    else:
                        # Queue work first, so the restart loses messages (nothing is persisted), then
                        # send more while Redis is down: the reaper must make both good.
                        for n in range(4):
                            load.train(100_000 + n)
                        subprocess.run(["redis-cli", "-p", str(args.redis_port), "shutdown", "nosave"],
                                       capture_output=True)
                        down = time.monotonic()
                        for n in range(2):
                            load.train(100_010 + n)
                        time.sleep(max(0.0, 2 - (time.monotonic() - down)))
                        redis_start(procs, args.redis_port, "redis-restarted", tmp)
                        report["events"].append(f"{down - t0:.1f} s: 4 train requests, then Redis shut down "
                                                f"(nosave), 2 train requests while down, back after "
                                                f"{time.monotonic() - down:.1f} s")
                    print(report["events"][-1], flush=True)
                time.sleep(max(0.0, at - time.monotonic()))
                pool.submit(getattr(load, draw.choices(kinds, weights)[0]), n)
        load_seconds = time.monotonic() - t0
        left = settle(time.monotonic() + args.drain)
        report["drain_seconds"] = round(time.monotonic() - t0 - load_seconds, 1)
        report["load_seconds"] = round(load_seconds, 1)
        report["requests"] = summarize(client.records)
        report["reconciliation"] = reconcile(marks, client.records, load.accepted_jobs)
    finally:
        procs.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: report[k] for k in ("events", "load_seconds", "drain_seconds")}), flush=True)
    print(f"{'kind':<8}{'sent':>6}{'ok':>6}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for kind, row in report["requests"].items():
        print(f"{kind:<8}{row['sent']:>6}{row['ok']:>6}{row['errors']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}  "
              f"{row['statuses']}{'  ' + '; '.join(row['first_errors']) if row['first_errors'] else ''}")
    rec = report["reconciliation"]
    print(f"jobs: {json.dumps(rec['jobs'])}")
    print(f"audit: expected {rec['audit']['expected']}, found {rec['audit']['found']}, "
          f"differences {rec['audit']['differences'] or 'none'}")
    print(f"chain: {'verified' if rec['chain']['verified'] else 'BROKEN'} ({rec['chain']['output'].splitlines()[0]})")
    print(f"RECONCILED: {'yes' if rec['ok'] else 'NO'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if rec["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

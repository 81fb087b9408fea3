"""Test helpers for alerts: a trained version made once per module, a run that raises alerts, a webhook receiver."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from governance.roles import Role
from riskmodels.jobs.kinds import job_execute
from riskmodels.models import Alert, Job, JobKind, ModelVersion, MonitoringRun
from riskmodels.services.alerts import Breach, alerts_raise, worst_light
from riskmodels.services.training import training_job_create
from tests.conftest import media_settings, register_demo_dataset, register_model, team_member


def trained_version_world():  # noqa: ANN201
    """Return a module-scoped fixture: one logistic regression, trained and committed once, flushed at the end.

    Its files go to the module's ``shared_media`` (``module_media``), which every test of the module reads.
    """
    @pytest.fixture(scope="module")
    def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN202
        with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
            owner, _ = team_member(username="owen-owner", role=Role.DEVELOPER)
            dataset_version = register_demo_dataset(owner)
            job = training_job_create(actor=owner, registered_model=register_model(owner),
                                      dataset_version=dataset_version, request={"algorithm": "logistic_regression"})
            job_execute(job_id=job.pk)
            yield ModelVersion.objects.select_related("registered_model").get(training_job=job)
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)
    return world


def raise_alerts(version: ModelVersion, *breaches: Breach) -> list[Alert]:
    """Record a stability run of ``version`` over the last day, as a monitoring job would, and raise its breaches."""
    breaches = breaches or (Breach(metric="psi:score", value=0.31, threshold=0.25, light="red",
                                   message="The score distribution has shifted (PSI 0.31 ≥ 0.25)."),)
    end = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(kind=JobKind.EVALUATE, params={}, registered_model=version.registered_model,
                                 model_version=version, dataset_version=version.dataset_version,
                                 requested_by_username="system:scheduler")
        run = MonitoringRun.objects.create(
            model_version=version, kind=MonitoringRun.Kind.STABILITY, window_start=end - dt.timedelta(days=1),
            window_end=end, n_rows=500, results={b.metric: {"value": b.value, "light": b.light} for b in breaches},
            light=worst_light([b.light for b in breaches]), thresholds={"psi_red": 0.25},
            job=job)
        return alerts_raise(run=run, breaches=list(breaches))


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records each POST and answers with the queued statuses (then 200)."""

    url: str
    answers: list[int] = field(default_factory=list)
    received: list[tuple[Message, bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.headers, body))
            self.send_response(state.answers.pop(0) if state.answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Keep http.server's request lines out of the test output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/alerts"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)

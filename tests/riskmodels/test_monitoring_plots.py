"""Monitoring and fairness charts through the service, the API and the admin: drawn from the runs of a
model's champion (or a named version), 404 naming what exists, 403 for an outsider, inline in the admin."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from riskmodels.ml.fairness import fairness_report
from riskmodels.ml.monitoring_plots import Cohort, auc_by_cohort, csi_heatmap, psi_over_time
from riskmodels.models import Evaluation, Job, JobKind, ModelVersion, MonitoringRun, VersionStatus
from riskmodels.services.monitoring_plots import RUNS_SHOWN, monitoring_plot_render, monitoring_plots_available
from tests.conftest import client_for, module_media
from tests.riskmodels.alerting import trained_version_world

pytestmark = pytest.mark.django_db

shared_media, _isolated_media = module_media("monitoring-plots-media")
world = trained_version_world()
THRESHOLDS = settings.MONITORING_THRESHOLDS
DAY0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _job(version: ModelVersion, kind: str) -> Job:
    return Job.objects.create(kind=kind, params={}, registered_model=version.registered_model, model_version=version,
                              dataset_version=version.dataset_version, requested_by_username="system:scheduler")


def _metric(value: float, amber: float, red: float) -> dict:
    light = "red" if value >= red else "amber" if value >= amber else "green"
    return {"value": value, "light": light, "thresholds": {"amber": amber, "red": red}}


def stability_run(version: ModelVersion, day: int, psi: float, csi: dict[str, float]) -> MonitoringRun:
    """Record a daily stability run of ``version`` with the shape the stability service writes."""
    metrics = {"psi:score": _metric(psi, THRESHOLDS["psi_amber"], THRESHOLDS["psi_red"]),
               **{f"csi:{f}": _metric(v, THRESHOLDS["csi_amber"], THRESHOLDS["csi_red"]) for f, v in csi.items()}}
    start = DAY0 + dt.timedelta(days=day)
    return MonitoringRun.objects.create(
        model_version=version, kind=MonitoringRun.Kind.STABILITY, window_start=start,
        window_end=start + dt.timedelta(days=1), n_rows=200, results={"metrics": metrics, "notes": []},
        light=max((m["light"] for m in metrics.values()), key=["green", "amber", "red"].index),
        thresholds=THRESHOLDS, job=_job(version, JobKind.STABILITY))


def performance_run(version: ModelVersion, month: int, auc: float, ci: tuple[float, float],
                    baseline: float = 0.78) -> MonitoringRun:
    """Record a measured performance run over one month's decisions, shaped as the performance service writes it."""
    start, end = dt.datetime(2026, month, 1, tzinfo=dt.UTC), dt.datetime(2026, month + 1, 1, tzinfo=dt.UTC)
    results = {"status": "measured", "n": 400, "metrics": {"auc": {"value": auc, "ci": {"lower": ci[0], "upper": ci[1]}}},
               "baseline": {"evaluation": 1, "auc": baseline}}
    return MonitoringRun.objects.create(
        model_version=version, kind=MonitoringRun.Kind.PERFORMANCE, window_start=start, window_end=end, n_rows=400,
        results=results, light="green", thresholds=THRESHOLDS, job=_job(version, JobKind.PERFORMANCE))


@pytest.fixture
def champion(world) -> ModelVersion:  # noqa: ANN001
    ModelVersion.objects.filter(pk=world.pk).update(status=VersionStatus.CHAMPION)
    return ModelVersion.objects.select_related("registered_model").get(pk=world.pk)


@pytest.fixture
def monitored(champion) -> ModelVersion:  # noqa: ANN001
    stability_run(champion, 0, 0.04, {"credit_amount": 0.02, "age": 0.01})
    stability_run(champion, 1, 0.13, {"credit_amount": 0.18, "age": 0.03})
    performance_run(champion, 3, 0.76, (0.71, 0.81))
    performance_run(champion, 4, 0.70, (0.64, 0.76))
    return champion


@pytest.fixture
def evaluation(world) -> Evaluation:  # noqa: ANN001
    rng = np.random.default_rng(5)
    age = pd.Series(rng.integers(19, 75, 500))
    scores = np.clip(rng.beta(2, 6, 500) + np.where(age < 26, 0.2, 0.0), 0, 1)
    y = (rng.random(500) < scores).astype(int)
    fairness = fairness_report(y, scores, {"age": age}, cutoff=0.3, n_bootstrap=30, seed=0).to_dict()
    return Evaluation.objects.create(model_version=world, dataset_version=world.dataset_version,
                                     scope=Evaluation.Scope.TEST_SPLIT, threshold=0.3, metrics={}, fairness=fairness,
                                     job=_job(world, JobKind.EVALUATE))


def _plot_url(version: ModelVersion, plot: str) -> str:
    return f"/api/v1/models/{version.registered_model.name}/monitoring/plots/{plot}.png"


@pytest.mark.parametrize("plot", ["psi-over-time", "csi-heatmap", "auc-by-cohort"])
def test_a_domain_reader_downloads_each_monitoring_chart_as_a_png(monitored, validator, plot):  # noqa: ANN001
    response = client_for(validator).get(_plot_url(monitored, plot))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)
    assert client_for(validator).get(_plot_url(monitored, plot)).content == response.content


def test_the_charts_are_drawn_from_the_champions_runs_in_order(monitored, developer):  # noqa: ANN001
    model = monitored.registered_model
    render = lambda plot: monitoring_plot_render(user=developer, model=model, plot=plot)  # noqa: E731
    assert render("psi-over-time") == psi_over_time([("2026-11-01", 0.04), ("2026-11-02", 0.13)], 0.10, 0.25)
    # The most shifted feature first; each run a column, oldest on the left.
    assert render("csi-heatmap") == csi_heatmap(["credit_amount", "age"], ["2026-11-01", "2026-11-02"],
                                                [[0.02, 0.18], [0.01, 0.03]], 0.10, 0.25)
    assert render("auc-by-cohort") == auc_by_cohort(
        [Cohort("2026-03-01 \u2013 2026-03-31", 0.76, 0.71, 0.81), Cohort("2026-04-01 \u2013 2026-04-30", 0.70, 0.64, 0.76)],
        0.78, THRESHOLDS["auc_drop_amber"], THRESHOLDS["auc_drop_red"])


def test_only_the_newest_runs_are_drawn(champion, developer):  # noqa: ANN001
    values = [round(0.01 * i, 2) for i in range(RUNS_SHOWN + 2)]
    for day, value in enumerate(values):
        stability_run(champion, day, value, {})
    expected = [((DAY0 + dt.timedelta(days=d)).date().isoformat(), v) for d, v in enumerate(values)][-RUNS_SHOWN:]
    drawn = monitoring_plot_render(user=developer, model=champion.registered_model, plot="psi-over-time")
    assert drawn == psi_over_time(expected, 0.10, 0.25)


def test_a_named_version_is_charted_like_the_champion(monitored, developer):  # noqa: ANN001
    client = client_for(developer)
    by_default = client.get(_plot_url(monitored, "psi-over-time"))
    named = client.get(_plot_url(monitored, "psi-over-time"), {"version": monitored.pk})
    assert named.status_code == 200 and named.content == by_default.content


def test_an_unknown_chart_is_a_404_naming_the_charts(monitored, developer):  # noqa: ANN001
    response = client_for(developer).get(_plot_url(monitored, "gini-over-time"))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == ("no monitoring plot 'gini-over-time'; the plots are: "
                                                   "psi-over-time, csi-heatmap, auc-by-cohort")


def test_nothing_to_chart_is_a_404_saying_what_is_missing(world, champion, developer):  # noqa: ANN001
    response = client_for(developer).get(_plot_url(champion, "auc-by-cohort"))
    assert response.status_code == 404
    assert "no performance run with a measured AUC yet" in response.json()["error"]["message"]


def test_a_model_without_a_champion_is_a_404_asking_for_a_version(world, developer):  # noqa: ANN001
    response = client_for(developer).get(_plot_url(world, "psi-over-time"))
    assert response.status_code == 404
    assert "has no champion" in response.json()["error"]["message"]


def test_an_outsider_may_not_download_a_chart(monitored, evaluation, outsider):  # noqa: ANN001
    assert client_for(outsider).get(_plot_url(monitored, "psi-over-time")).status_code == 403
    assert client_for(outsider).get(f"/api/v1/evaluations/{evaluation.pk}/fairness/age.png").status_code == 403


def test_the_approval_by_group_chart_of_an_evaluation_is_a_png(evaluation, auditor):  # noqa: ANN001
    response = client_for(auditor).get(f"/api/v1/evaluations/{evaluation.pk}/fairness/age.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)


def test_an_unknown_fairness_column_is_a_404_naming_the_columns(evaluation, auditor):  # noqa: ANN001
    response = client_for(auditor).get(f"/api/v1/evaluations/{evaluation.pk}/fairness/income.png")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == (f"evaluation {evaluation.pk} has no fairness result for 'income'; "
                                                   "its columns: age")


def test_the_charts_available_are_those_the_champion_has_runs_for(champion, developer):  # noqa: ANN001
    model = champion.registered_model
    assert monitoring_plots_available(user=developer, model=model) == []
    stability_run(champion, 0, 0.05, {})
    assert monitoring_plots_available(user=developer, model=model) == ["psi-over-time"]
    performance_run(champion, 3, 0.76, (0.71, 0.81))
    assert monitoring_plots_available(user=developer, model=model) == ["psi-over-time", "auc-by-cohort"]


def signed_in(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def test_the_model_admin_page_shows_the_monitoring_charts_to_a_compliance_officer(monitored, compliance_officer):  # noqa: ANN001
    client = signed_in(compliance_officer)
    page = client.get(reverse("admin:riskmodels_registeredmodel_change", args=[monitored.registered_model_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="monitoring-plots"' in html
    for plot in ("psi-over-time", "csi-heatmap", "auc-by-cohort"):
        url = reverse("admin:riskmodels_registeredmodel_monitoring_plot", args=[monitored.registered_model_id, plot])
        assert f'<img src="{url}" alt="{plot}"' in html
        image = client.get(url)
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
    unknown = reverse("admin:riskmodels_registeredmodel_monitoring_plot", args=[monitored.registered_model_id, "x"])
    assert client.get(unknown).status_code == 404


def test_the_model_admin_page_says_when_there_is_nothing_to_chart(world, compliance_officer):  # noqa: ANN001
    html = signed_in(compliance_officer).get(
        reverse("admin:riskmodels_registeredmodel_change", args=[world.registered_model_id])).content.decode()
    assert "No stability or measured performance run of a champion yet." in html


def test_the_evaluation_admin_page_shows_the_approval_chart_under_each_fairness_table(evaluation,  # noqa: ANN001
                                                                                      compliance_officer):
    client = signed_in(compliance_officer)
    html = client.get(reverse("admin:riskmodels_evaluation_change", args=[evaluation.pk])).content.decode()
    url = reverse("admin:riskmodels_evaluation_fairness_plot", args=[evaluation.pk, "age"])
    assert f'src="{url}"' in html
    image = client.get(url)
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert client.get(reverse("admin:riskmodels_evaluation_fairness_plot", args=[evaluation.pk, "sex"])).status_code == 404


def test_the_admin_charts_are_refused_to_a_user_who_may_not_read_models(monitored, evaluation, underwriter):  # noqa: ANN001
    client = signed_in(underwriter)
    model_id = monitored.registered_model_id
    assert client.get(reverse("admin:riskmodels_registeredmodel_monitoring_plot",
                              args=[model_id, "psi-over-time"])).status_code == 403
    assert client.get(reverse("admin:riskmodels_evaluation_fairness_plot", args=[evaluation.pk, "age"])).status_code == 403

"""Scoring behind the approval gate, through the API: the gate, the ledger, reproduction, overrides, bad input."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.test import override_settings

from governance.models import AuditEvent
from governance.roles import Role
from riskmodels.jobs.kinds import job_execute
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.models import CreditDecision, Job, JobStatus, ModelVersion, RegisteredModel, VersionStatus
from riskmodels.services.explanations.cache import pipeline_load
from riskmodels.services.reviews import registered_model_inventory_update
from tests.conftest import (
    GERMAN_CREDIT,
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    team_member,
    train_version,
)

pytestmark = pytest.mark.django_db

POLICY = {"cutoff": 0.5, "refer_from": 0.35}
PROTECTED = {"personal_status_and_sex", "age_in_years", "foreign_worker"}


@dataclass(frozen=True)
class World:
    model: RegisteredModel
    champion: ModelVersion
    challenger: ModelVersion  # approved, not champion
    trained: ModelVersion  # never submitted
    rows: list[dict[str, Any]]  # German-credit applicants as the API takes them


shared_media, _isolated_media = module_media("scoring-media")




def _applicants(spec: TrainingSpec, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(GERMAN_CREDIT)
    out = []
    for record in frame[list(spec.features)].head(n).to_dict("records"):
        out.append({f: (v.item() if isinstance(v, np.generic) else v) for f, v in record.items()})
    return out


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        owner, _ = team_member(username="owen-owner", role=Role.DEVELOPER)
        officer, _ = team_member(username="olga-officer", role=Role.COMPLIANCE_OFFICER)
        dataset_version = register_demo_dataset(owner)
        model = register_model(owner)
        champion = train_version(owner, model, dataset_version, "gradient_boosting")
        challenger = train_version(owner, model, dataset_version, "logistic_regression")
        trained = train_version(owner, model, dataset_version, "random_forest")
        # The lifecycle that gets a version here is tested in test_lifecycle; these tests need its result.
        ModelVersion.objects.filter(pk=champion.pk).update(status=VersionStatus.CHAMPION)
        ModelVersion.objects.filter(pk=challenger.pk).update(status=VersionStatus.APPROVED)
        model = registered_model_inventory_update(actor=officer, model=model, changes={"scoring_policy": POLICY})
        rows = _applicants(TrainingSpec.from_dict(champion.spec), 40)
        yield World(model=model, champion=ModelVersion.objects.get(pk=champion.pk), challenger=challenger,
                    trained=trained, rows=rows)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def _score(user, world: World, applications: Any, **extra: Any):  # noqa: ANN001,ANN202
    return client_for(user).post(f"/api/v1/models/{world.model.name}/score/",
                                 {"applications": applications, **extra}, format="json")


def _apps(world: World, n: int = 1, start: int = 0) -> list[dict[str, Any]]:
    return [{"reference": f"APP-{start + i}", "features": world.rows[start + i]} for i in range(n)]


def _model_pd(version: ModelVersion, rows: list[dict[str, Any]]) -> np.ndarray:
    spec = TrainingSpec.from_dict(version.spec)
    return pipeline_load(version).predict_proba(prepare_features(pd.DataFrame(rows), spec))[:, 1]


# --- The answer and the ledger -----------------------------------------------------------------------

def test_an_underwriter_scores_applicants_and_each_answer_is_a_ledger_entry_with_one_audit_event(world,  # noqa: ANN001
                                                                                                underwriter):
    response = _score(underwriter, world, _apps(world, 20))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_version"] == world.champion.pk and body["shadow"] == []
    expected = _model_pd(world.champion, world.rows[:20])
    assert np.allclose([d["pd"] for d in body["decisions"]], expected, rtol=0, atol=1e-12)
    for answer, pd_ in zip(body["decisions"], expected, strict=True):
        assert answer["decision"] == ("decline" if pd_ >= 0.5 else "refer" if pd_ >= 0.35 else "approve")
        assert len(answer["reasons"]) <= 4
        assert not {r["feature"] for r in answer["reasons"]} & PROTECTED
        if answer["decision"] == "approve":
            assert answer["reasons"] == []
        entry = CreditDecision.objects.get(pk=answer["id"])
        assert (entry.reference, entry.pd, entry.outcome, entry.model_version_id, entry.decisive) == (
            answer["reference"], answer["pd"], answer["decision"], world.champion.pk, True)
        assert entry.features == world.rows[int(answer["reference"].split("-")[1])]
        assert entry.policy["cutoff"] == 0.5 and entry.actor_username == underwriter.username
        assert entry.fingerprint.data["explainer"] == "shap.TreeExplainer"
    assert {d["decision"] for d in body["decisions"]} >= {"approve", "decline"}
    event = AuditEvent.objects.get(action="decisions.scored")
    assert event.after["decisions"] == [d["id"] for d in body["decisions"]]
    assert event.actor_username == underwriter.username


def test_a_declined_applicants_reasons_are_material_pushes_toward_default(world, underwriter):  # noqa: ANN001
    body = _score(underwriter, world, _apps(world, 40)).json()
    declined = [d for d in body["decisions"] if d["decision"] == "decline"]
    assert declined
    for answer in declined:
        entry = CreditDecision.objects.get(pk=answer["id"])
        total = sum(v for v in entry.contributions.values() if v > 0)
        listed = [r["feature"] for r in answer["reasons"]]
        assert listed == sorted(listed, key=lambda f: -entry.contributions[f])
        assert all(r["contribution"] >= max(0.1 * total, 0.05) for r in answer["reasons"])
        assert all(r["text"] for r in answer["reasons"])


# --- The gate ----------------------------------------------------------------------------------------

def test_a_model_without_a_champion_is_refused_and_nothing_is_written(world, underwriter):  # noqa: ANN001
    ModelVersion.objects.filter(pk=world.champion.pk).update(status=VersionStatus.RETIRED)
    response = _score(underwriter, world, _apps(world))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_approved"
    assert not CreditDecision.objects.exists()
    assert not AuditEvent.objects.filter(action="decisions.scored").exists()


@pytest.mark.parametrize("which", ["trained", "champion", "unknown"])
def test_only_an_approved_challenger_is_scored_in_shadow(world, underwriter, which):  # noqa: ANN001
    shadow = {"trained": world.trained.pk, "champion": world.champion.pk, "unknown": 999_999}[which]
    response = _score(underwriter, world, _apps(world), shadow_version=shadow)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_approved"
    assert not CreditDecision.objects.exists()


def test_an_approved_challenger_in_shadow_is_recorded_and_decides_nothing(world, underwriter):  # noqa: ANN001
    body = _score(underwriter, world, _apps(world, 3), shadow_version=world.challenger.pk).json()
    assert [d["decisive"] for d in body["decisions"]] == [True] * 3
    assert [d["decisive"] for d in body["shadow"]] == [False] * 3
    assert np.allclose([d["pd"] for d in body["shadow"]], _model_pd(world.challenger, world.rows[:3]), atol=1e-12)
    shadow_entries = CreditDecision.objects.filter(decisive=False)
    assert set(shadow_entries.values_list("model_version_id", flat=True)) == {world.challenger.pk}
    event = AuditEvent.objects.get(action="decisions.scored")
    assert event.after["shadow_decisions"] == [d["id"] for d in body["shadow"]]


def test_nothing_scores_before_a_compliance_officer_sets_a_cutoff(world, underwriter):  # noqa: ANN001
    RegisteredModel.objects.filter(pk=world.model.pk).update(scoring_policy={})
    response = _score(underwriter, world, _apps(world))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_scoring_policy"
    assert not CreditDecision.objects.exists()


def test_a_bad_scoring_policy_is_refused_naming_it(world, compliance_officer):  # noqa: ANN001
    response = client_for(compliance_officer).patch(f"/api/v1/models/{world.model.name}/inventory/",
                                                    {"scoring_policy": {"cutoff": 0.3, "refer_from": 0.6}},
                                                    format="json")
    assert response.status_code == 400
    assert "refer_from (0.6) must be below the cutoff" in response.json()["error"]["message"]
    assert RegisteredModel.objects.get(pk=world.model.pk).scoring_policy["cutoff"] == 0.5


@pytest.mark.parametrize("role_fixture, status", [("auditor", 403), ("validator", 403), ("compliance_officer", 403),
                                                  ("developer", 200), ("outsider", 403)])
def test_who_may_score(world, request, role_fixture, status):  # noqa: ANN001
    assert _score(request.getfixturevalue(role_fixture), world, _apps(world)).status_code == status


def test_an_underwriter_sees_decisions_but_no_other_domain_data(world, underwriter):  # noqa: ANN001
    client = client_for(underwriter)
    assert client.get("/api/v1/models/").status_code == 403
    assert client.get(f"/api/v1/model-versions/{world.champion.pk}/").status_code == 403
    assert client.get("/api/v1/decisions/").status_code == 200


# --- Bad input ---------------------------------------------------------------------------------------

def _bad_inputs(world: World) -> dict[str, tuple[Any, str, str]]:
    row = world.rows[0]
    numeric = next(f for f, v in row.items() if isinstance(v, int | float))
    categorical = next(f for f, v in row.items() if isinstance(v, str))
    without = {k: v for k, v in row.items() if k != numeric}
    return {
        "missing feature": ([{"reference": "A", "features": without}], "missing_feature", numeric),
        "unknown feature": ([{"reference": "A", "features": {**row, "shoe_size": 44}}], "unknown_feature",
                            "shoe_size"),
        "number as text": ([{"reference": "A", "features": {**row, numeric: "12"}}], "wrong_type", numeric),
        "category as number": ([{"reference": "A", "features": {**row, categorical: 3}}], "wrong_type", categorical),
        "empty batch": ([], "empty_batch", "applications"),
        "not a list": ({"reference": "A"}, "empty_batch", "applications"),
        "oversized batch": ([{"reference": f"A{i}", "features": row} for i in range(101)], "over_batch_cap", "100"),
        "duplicate reference": ([{"reference": "A", "features": row}, {"reference": "A", "features": row}],
                                "duplicate_reference", "applications[1]"),
        "no reference": ([{"features": row}], "invalid_reference", "applications[0].reference"),
        "second row bad": ([{"reference": "A", "features": row}, {"reference": "B", "features": without}],
                           "missing_feature", "applications[1]"),
    }


@pytest.mark.parametrize("case", ["missing feature", "unknown feature", "number as text", "category as number",
                                  "empty batch", "not a list", "oversized batch", "duplicate reference",
                                  "no reference", "second row bad"])
def test_bad_input_is_refused_naming_the_field_and_leaves_nothing_behind(world, underwriter, case):  # noqa: ANN001
    applications, code, named = _bad_inputs(world)[case]
    client = client_for(underwriter)
    before = AuditEvent.objects.count()
    response = client.post(f"/api/v1/models/{world.model.name}/score/", {"applications": applications}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == code and named in error["message"]
    assert not CreditDecision.objects.exists()
    assert AuditEvent.objects.count() == before


def test_a_nan_in_the_body_is_refused_by_the_parser(world, underwriter):  # noqa: ANN001
    body = '{"applications": [{"reference": "A", "features": {"duration_in_month": NaN}}]}'
    response = client_for(underwriter).post(f"/api/v1/models/{world.model.name}/score/", body,
                                            content_type="application/json")
    assert response.status_code == 400
    assert not CreditDecision.objects.exists()


def test_a_missing_value_is_imputed_as_in_training_and_an_unseen_category_is_flagged(world, underwriter):  # noqa: ANN001
    row = dict(world.rows[0])
    numeric = next(f for f, v in row.items() if isinstance(v, int | float))
    categorical = next(f for f, v in row.items() if isinstance(v, str))
    row[numeric], row[categorical] = None, "never-seen-before"
    body = _score(underwriter, world, [{"reference": "odd", "features": row}]).json()
    answer = body["decisions"][0]
    assert "unseen_category" in answer["flags"] and answer["flag_details"]["unseen_category"] == [categorical]
    assert np.isclose(answer["pd"], _model_pd(world.champion, [row])[0], atol=1e-12)


def test_a_model_agnostic_explainer_over_the_request_budget_is_refused_with_a_pointer_to_batch(world, underwriter,  # noqa: ANN001
                                                                                              settings):
    settings.SCORING_REQUEST_BUDGET_SECONDS = 0.01
    mlp = train_version(world.champion.created_by, world.model, world.champion.dataset_version, "mlp")
    ModelVersion.objects.filter(pk=world.champion.pk).update(status=VersionStatus.APPROVED)
    ModelVersion.objects.filter(pk=mlp.pk).update(status=VersionStatus.CHAMPION)
    response = _score(underwriter, world, _apps(world, 5))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "over_request_budget" and "batch scoring job" in error["message"]
    assert not CreditDecision.objects.exists()


# --- Reproduction --------------------------------------------------------------------------------------

def test_re_scoring_a_ledger_entry_with_its_version_gives_the_same_pd_and_reasons(world, underwriter, auditor):  # noqa: ANN001
    body = _score(underwriter, world, _apps(world, 12)).json()
    declined = next(d for d in body["decisions"] if d["decision"] == "decline")
    response = client_for(auditor).post(f"/api/v1/decisions/{declined['id']}/reproduce/", {}, format="json")
    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["reproduced"] is True and result["same_explainer"] is True
    assert result["pd_now"] == declined["pd"] and result["reasons_now"] == declined["reasons"]
    assert AuditEvent.objects.filter(action="decision.reproduced", actor_username=auditor.username).count() == 1


def test_a_hash_only_ledger_keeps_no_inputs_and_reproduces_from_posted_features(world, underwriter,  # noqa: ANN001
                                                                                 compliance_officer):
    client_for(compliance_officer).patch(f"/api/v1/models/{world.model.name}/inventory/", {"ledger_inputs": "hash"},
                                         format="json")
    answer = _score(underwriter, world, _apps(world, 1, start=5)).json()["decisions"][0]
    entry = CreditDecision.objects.get(pk=answer["id"])
    assert entry.features is None and len(entry.features_sha256) == 64
    url = f"/api/v1/decisions/{entry.pk}/reproduce/"
    client = client_for(underwriter)
    assert client.post(url, {}, format="json").json()["error"]["code"] == "features_required"
    changed = {**world.rows[5], "duration_in_month": world.rows[5]["duration_in_month"] + 1}
    assert client.post(url, {"features": changed}, format="json").json()["error"]["code"] == "features_mismatch"
    reproduced = client.post(url, {"features": world.rows[5]}, format="json").json()
    assert reproduced["reproduced"] is True and reproduced["pd_now"] == answer["pd"]


# --- Queries -------------------------------------------------------------------------------------------

def test_the_ledger_is_queryable_by_reference_model_version_and_date(world, underwriter, auditor):  # noqa: ANN001
    _score(underwriter, world, _apps(world, 3))
    _score(underwriter, world, _apps(world, 1), shadow_version=world.challenger.pk)
    client = client_for(auditor)
    by_reference = client.get("/api/v1/decisions/", {"reference": "APP-0"}).json()["results"]
    assert len(by_reference) == 3 and {d["reference"] for d in by_reference} == {"APP-0"}
    by_version = client.get("/api/v1/decisions/", {"version": world.challenger.pk}).json()["results"]
    assert [d["decisive"] for d in by_version] == [False]
    assert client.get("/api/v1/decisions/", {"model": world.model.name, "decisive": "true"}).json()["count"] == 4
    assert client.get("/api/v1/decisions/", {"since": "2999-01-01"}).json()["count"] == 0
    assert client.get("/api/v1/decisions/", {"until": "2999-01-01"}).json()["count"] == 5
    bad = client.get("/api/v1/decisions/", {"since": "last tuesday"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "since"
    assert client.get("/api/v1/decisions/999999/").status_code == 404


# --- Overrides ------------------------------------------------------------------------------------------

def test_an_underwriter_overrides_a_decision_once_with_a_reason_and_it_is_audited(world, underwriter):  # noqa: ANN001
    answer = _score(underwriter, world, _apps(world, 12)).json()["decisions"]
    declined = next(d for d in answer if d["decision"] == "decline")
    client = client_for(underwriter)
    url = f"/api/v1/decisions/{declined['id']}/override/"
    body = {"outcome": "approve", "reason": "collateral", "text": "Guarantor with verified assets."}
    response = client.post(url, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["outcome"] == "approve"
    again = client.post(url, {**body, "reason": "other"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_overridden"
    entry = CreditDecision.objects.get(pk=declined["id"])
    assert entry.outcome == "decline" and entry.override.outcome == "approve"  # the ledger row never changes
    event = AuditEvent.objects.get(action="decision.overridden")
    assert event.after["from"] == "decline" and event.after["to"] == "approve" and event.after["reason"] == "collateral"
    detail = client.get(f"/api/v1/decisions/{declined['id']}/").json()
    assert detail["override"]["reason"] == "collateral"


@pytest.mark.parametrize("body, code", [
    ({"outcome": "decline", "reason": "collateral", "text": "x"}, "same_outcome"),
    ({"outcome": "approve", "reason": "a hunch", "text": "x"}, "invalid"),
    ({"outcome": "approve", "reason": "collateral", "text": "   "}, "invalid"),
    ({"outcome": "maybe", "reason": "collateral", "text": "x"}, "invalid"),
])
def test_a_bad_override_is_refused_and_nothing_is_recorded(world, underwriter, body, code):  # noqa: ANN001
    answer = _score(underwriter, world, _apps(world, 12)).json()["decisions"]
    declined = next(d for d in answer if d["decision"] == "decline")
    response = client_for(underwriter).post(f"/api/v1/decisions/{declined['id']}/override/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not AuditEvent.objects.filter(action="decision.overridden").exists()


def test_only_underwriters_override_and_shadow_decisions_cannot_be_overridden(world, underwriter, developer,  # noqa: ANN001
                                                                               compliance_officer):
    body = _score(underwriter, world, _apps(world, 1), shadow_version=world.challenger.pk).json()
    override = {"outcome": "refer", "reason": "policy_rule", "text": "Manual review required by policy 4.2."}
    for user in (developer, compliance_officer):
        response = client_for(user).post(f"/api/v1/decisions/{body['decisions'][0]['id']}/override/", override,
                                         format="json")
        assert response.status_code == 403
    shadow = client_for(underwriter).post(f"/api/v1/decisions/{body['shadow'][0]['id']}/override/", override,
                                          format="json")
    assert shadow.status_code == 409 and shadow.json()["error"]["code"] == "not_decisive"


def test_compliance_sees_decision_volume_approve_rate_and_override_rates_by_reason(world, underwriter,  # noqa: ANN001
                                                                                    compliance_officer):
    answers = _score(underwriter, world, _apps(world, 30)).json()["decisions"]
    declined = [d for d in answers if d["decision"] == "decline"][:2]
    for answer, reason in zip(declined, ("collateral", "data_error"), strict=True):
        client_for(underwriter).post(f"/api/v1/decisions/{answer['id']}/override/",
                                     {"outcome": "approve", "reason": reason, "text": "checked"}, format="json")
    stats = client_for(compliance_officer).get(f"/api/v1/models/{world.model.name}/decision-stats/").json()
    approved = sum(d["decision"] == "approve" for d in answers)
    assert stats["decisions"] == 30 and stats["approved"] == approved
    assert stats["approve_rate"] == pytest.approx(approved / 30)
    assert stats["overridden"] == 2 and stats["override_rate"] == pytest.approx(2 / 30)
    assert stats["overrides_by_reason"] == {"collateral": 1, "data_error": 1}
    assert stats["overrides_by_direction"] == {"decline_to_approve": 2}
    bad = client_for(compliance_officer).get(f"/api/v1/models/{world.model.name}/decision-stats/", {"days": "-3"})
    assert bad.status_code == 400


# --- Batch scoring --------------------------------------------------------------------------------------

@pytest.fixture
def small_chunks(settings):  # noqa: ANN001,ANN201
    # Chunks of 500 rows: over FEW_ROWS, so batch takes the many-row explainer path and the API
    # the few-row one; the two must agree.
    settings.SCORING_BATCH_CHUNK_ROWS = 500
    settings.EXPLAIN_MIN_CHUNK_ROWS = 100
    settings.EXPLAIN_PARALLELISM = 2


def _batch(user, world: World, **body: Any):  # noqa: ANN001,ANN202
    return client_for(user).post(f"/api/v1/models/{world.model.name}/batch-scoring/",
                                 {"dataset_version": world.champion.dataset_version_id, **body}, format="json")


def test_batch_scoring_writes_a_parquet_and_a_ledger_entry_per_row_equal_to_one_by_one_scoring(  # noqa: ANN001
        world, developer, small_chunks):
    import io

    import pyarrow.parquet as pq

    from tests.conftest import run_queued_jobs

    response = _batch(developer, world)
    assert response.status_code == 202, response.json()
    run_queued_jobs()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.chunks.count() == 2
    download = client_for(developer).get(f"/api/v1/batch-scoring/{job.pk}/decisions.parquet")
    assert download.status_code == 200
    table = pq.read_table(io.BytesIO(b"".join(download.streaming_content))).to_pandas()
    assert list(table["row"]) == list(range(1000)) and job.result["n_rows"] == 1000
    frame = pd.read_csv(GERMAN_CREDIT)
    spec = TrainingSpec.from_dict(world.champion.spec)
    expected = pipeline_load(world.champion).predict_proba(prepare_features(frame, spec))[:, 1]
    assert np.allclose(table["pd"], expected, rtol=0, atol=1e-12)
    entries = CreditDecision.objects.filter(job=job).order_by("row")
    assert entries.count() == 1000 and set(entries.values_list("source", flat=True)) == {"batch"}
    assert sum(job.result["outcomes"].values()) == 1000
    # The same applicants one by one through the API get the same PD, decision and reasons.
    sample = [3, 17, 256, 999]
    answers = _score(developer, world, [{"reference": f"R{r}", "features": world_row(frame, spec, r)}
                                        for r in sample]).json()["decisions"]
    for r, answer in zip(sample, answers, strict=True):
        entry = entries.get(row=r)
        assert (entry.pd, entry.outcome) == (answer["pd"], answer["decision"])
        # Tree values summed per tree (batch) or in one shap call (API) agree to rounding.
        assert [x["feature"] for x in entry.reasons] == [x["feature"] for x in answer["reasons"]]
        assert [x["contribution"] for x in entry.reasons] == pytest.approx(
            [x["contribution"] for x in answer["reasons"]], rel=0, abs=1e-12)
        assert list(table.loc[r, "reasons"]) == [x["feature"] for x in answer["reasons"]]
    assert AuditEvent.objects.filter(action="batch_scoring.finished", target_id=str(job.pk)).count() == 1


def world_row(frame: pd.DataFrame, spec: TrainingSpec, r: int) -> dict[str, Any]:
    return {f: (v.item() if isinstance(v, np.generic) else v) for f, v in frame.loc[r, list(spec.features)].items()}


def test_a_redelivered_batch_chunk_records_each_row_once(world, developer, small_chunks):  # noqa: ANN001
    from riskmodels.services.batch_scoring import batch_scoring_chunk_work
    from tests.conftest import run_queued_jobs

    job_id = _batch(developer, world).json()["id"]
    run_queued_jobs()
    job = Job.objects.get(pk=job_id)
    batch_scoring_chunk_work(job, job.chunks.order_by("index").first())
    assert CreditDecision.objects.filter(job=job).count() == 1000


def test_a_champion_retired_mid_run_stops_the_batch(world, developer, small_chunks):  # noqa: ANN001
    from riskmodels.jobs.kinds import chunk_execute

    job_id = _batch(developer, world).json()["id"]
    job_execute(job_id=job_id)
    chunks = list(Job.objects.get(pk=job_id).chunks.order_by("index").values_list("pk", flat=True))
    chunk_execute(chunk_id=chunks[0])
    ModelVersion.objects.filter(pk=world.champion.pk).update(status=VersionStatus.RETIRED)
    for chunk_id in chunks[1:]:
        chunk_execute(chunk_id=chunk_id)
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED and "no longer the champion" in job.error
    first = job.chunks.order_by("index").first()
    # The chunk scored while the version was champion keeps its entries; nothing after it.
    assert CreditDecision.objects.filter(job=job).count() == first.stop - first.start


def test_batch_scoring_is_refused_up_front_without_a_champion_or_with_a_bad_request(world, developer):  # noqa: ANN001
    response = _batch(developer, world, reference_column="no_such_column")
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "reference_column"
    ModelVersion.objects.filter(pk=world.champion.pk).update(status=VersionStatus.APPROVED)
    response = _batch(developer, world)
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_approved"
    assert not Job.objects.filter(kind="batch_score").exists()


# --- Adverse-action notices ------------------------------------------------------------------------------

def test_a_decline_gets_a_notice_with_plain_reasons_and_a_counterfactual_that_really_crosses_the_cutoff(  # noqa: ANN001
        world, underwriter):
    answers = _score(underwriter, world, _apps(world, 40)).json()["decisions"]
    declined = [d for d in answers if d["decision"] == "decline"]
    spec = TrainingSpec.from_dict(world.champion.spec)
    found = 0
    for answer in declined:
        response = client_for(underwriter).get(f"/api/v1/decisions/{answer['id']}/notice/")
        assert response.status_code == 200, response.json()
        notice = response.json()
        assert notice["principal_reasons"] == [r["text"] for r in answer["reasons"]]
        assert answer["reference"] in notice["statement"] and "declined" in notice["statement"]
        assert not set(notice["actionable_features"]) & PROTECTED
        counterfactual = notice["counterfactual"]
        changes = counterfactual["changes"]
        assert len(changes) <= 2
        assert {c["feature"] for c in changes} <= set(notice["actionable_features"])
        if counterfactual["found"]:
            found += 1
            row = dict(world.rows[int(answer["reference"].split("-")[1])])
            for change in changes:
                assert row[change["feature"]] == change["original"]
                row[change["feature"]] = change["proposed"]
            # The same version really moves the applicant below the cutoff with those changes.
            assert _model_pd(world.champion, [row])[0] < 0.5 <= answer["pd"]
        else:
            assert "No change" in counterfactual["message"]
        assert spec  # the notice is of this version
        assert notice["model_version"] == world.champion.pk
    assert found >= 1
    assert AuditEvent.objects.filter(action="decision.notice_issued").count() == len(declined)


def test_an_approval_or_a_shadow_decision_has_no_notice(world, underwriter):  # noqa: ANN001
    body = _score(underwriter, world, _apps(world, 12), shadow_version=world.challenger.pk).json()
    approved = next(d for d in body["decisions"] if d["decision"] == "approve")
    client = client_for(underwriter)
    response = client.get(f"/api/v1/decisions/{approved['id']}/notice/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_adverse"
    response = client.get(f"/api/v1/decisions/{body['shadow'][0]['id']}/notice/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_decisive"
    assert not AuditEvent.objects.filter(action="decision.notice_issued").exists()


def test_a_counterfactual_never_changes_a_feature_the_model_does_not_list_as_actionable(world, underwriter,  # noqa: ANN001
                                                                                      compliance_officer):
    client_for(compliance_officer).patch(f"/api/v1/models/{world.model.name}/inventory/",
                                         {"actionable_features": ["credit_amount", "age_in_years"]}, format="json")
    answers = _score(underwriter, world, _apps(world, 40)).json()["decisions"]
    declined = next(d for d in answers if d["decision"] == "decline")
    notice = client_for(underwriter).get(f"/api/v1/decisions/{declined['id']}/notice/").json()
    assert notice["actionable_features"] == ["credit_amount"]  # the protected one is dropped even when listed
    assert {c["feature"] for c in notice["counterfactual"]["changes"]} <= {"credit_amount"}


def test_local_explanations_and_scoring_speak_one_language(world, developer, settings):  # noqa: ANN001
    answer = _score(developer, world, _apps(world, 1, start=7)).json()["decisions"][0]
    entry = CreditDecision.objects.get(pk=answer["id"])
    body = client_for(developer).post(f"/api/v1/model-versions/{world.champion.pk}/explain-rows/",
                                      {"rows": [world.rows[7]]}, format="json").json()
    explained = body["explanations"][0]
    assert explained["pd"] == answer["pd"]
    assert explained["contributions_log_odds"] == pytest.approx(entry.contributions, abs=1e-12)
    assert explained["base_log_odds"] == pytest.approx(entry.base_log_odds, abs=1e-12)
    # A model-agnostic explainer over the request budget is refused, not left to hang.
    settings.SCORING_REQUEST_BUDGET_SECONDS = 0.01
    mlp = train_version(world.champion.created_by, world.model, world.champion.dataset_version, "mlp")
    response = client_for(developer).post(f"/api/v1/model-versions/{mlp.pk}/explain-rows/",
                                          {"rows": [world.rows[7]]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "over_request_budget"


# --- Export ------------------------------------------------------------------------------------------------

def test_the_ledger_exports_as_csv_and_json_lines_with_formulas_neutralised_and_the_export_audited(  # noqa: ANN001
        world, underwriter, auditor):
    import csv
    import io
    import json

    applications = [{"reference": "=HYPERLINK(\"http://evil\")", "features": world.rows[0]},
                    {"reference": "plain-1", "features": world.rows[1]}]
    _score(underwriter, world, applications)
    client = client_for(auditor)
    response = client.get("/api/v1/decisions/export/", {"file_format": "csv", "model": world.model.name})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["reference"] for r in rows] == ["'=HYPERLINK(\"http://evil\")", "plain-1"]
    assert float(rows[1]["pd"]) == CreditDecision.objects.get(reference="plain-1").pd
    lines = b"".join(client.get("/api/v1/decisions/export/", {"file_format": "jsonl"}).streaming_content).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["reference"] for r in records] == ["=HYPERLINK(\"http://evil\")", "plain-1"]  # JSON keeps data as is
    assert records[0]["features"] == world.rows[0]
    exports = AuditEvent.objects.filter(action="decisions.exported").order_by("seq")
    assert [(e.after["format"], e.after["rows"]) for e in exports] == [("csv", 2), ("jsonl", 2)]
    bad = client.get("/api/v1/decisions/export/", {"file_format": "xlsx"})
    assert bad.status_code == 400 and exports.count() == 2


@pytest.mark.parametrize("thresholds, message", [
    ({"psi_amber": 0.3}, "psi_amber (0.3) must be below psi_red (0.25)"),
    ({"psi_amber": 0.2, "psi_red": 0.1}, "psi_amber (0.2) must be below psi_red (0.1)"),
    ({"colour": 1}, "unknown monitoring thresholds: colour"),
    ({"csi_red": -1}, "must be a positive number"),
    # An adverse impact ratio is worse the lower it is: red must sit below amber, and neither above 1.
    ({"fairness_air_red": 0.85}, "fairness_air_amber (0.8) must be above fairness_air_red (0.85): lower is worse"),
    ({"fairness_air_amber": 0.6}, "fairness_air_amber (0.6) must be above fairness_air_red (0.6)"),
    ({"fairness_air_amber": 1.5, "fairness_air_red": 0.9}, "fairness_air_amber is a ratio of approval rates, at most 1"),
])
def test_monitoring_thresholds_with_amber_above_red_are_refused_and_nothing_changes(world, compliance_officer,  # noqa: ANN001
                                                                                  thresholds, message):
    response = client_for(compliance_officer).patch(f"/api/v1/models/{world.model.name}/inventory/",
                                                    {"monitoring_thresholds": thresholds}, format="json")
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert RegisteredModel.objects.get(pk=world.model.pk).monitoring_thresholds == {}


def test_fairness_thresholds_with_red_below_amber_are_accepted(world, compliance_officer):  # noqa: ANN001
    thresholds = {"fairness_air_amber": 0.9, "fairness_air_red": 0.7, "psi_amber": 0.05}

    response = client_for(compliance_officer).patch(f"/api/v1/models/{world.model.name}/inventory/",
                                                    {"monitoring_thresholds": thresholds}, format="json")

    assert response.status_code == 200, response.json()
    assert RegisteredModel.objects.get(pk=world.model.pk).monitoring_thresholds == thresholds

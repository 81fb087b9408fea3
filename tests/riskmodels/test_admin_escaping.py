"""Text people type comes out escaped: hostile column names, model texts, findings, reasons and overrides
render as text in every admin page that shows them, and never reach the API schema (so the docs pages).

The browser twin of these tests (tests/browser/test_escaping.py) loads the same pages in chromium and
checks that no script runs; these read the HTML the server sends.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from governance.roles import Role
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.models import (
    CreditDecision,
    DatasetVersion,
    Decision,
    Finding,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.services.datasets import dataset_version_create
from riskmodels.services.findings import finding_raise, finding_remediate
from riskmodels.services.lifecycle import version_retire
from riskmodels.services.overrides import decision_override
from riskmodels.services.reasons import reason_text_set
from riskmodels.services.registry import registered_model_create
from riskmodels.services.reviews import registered_model_inventory_update
from tests.conftest import (
    GERMAN_CREDIT,
    GERMAN_CREDIT_ROLES,
    client_for,
    media_settings,
    module_media,
    team_member,
    train_version,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAYLOADS = (SCRIPT, IMG)
# Two feature columns of German Credit renamed to the payloads: they travel into the schema, the
# profile, the spec, reason texts and the ledger's reasons.
HOSTILE_COLUMNS = {"purpose": SCRIPT, "telephone": IMG}
POLICY = {"cutoff": 0.5, "refer_from": 0.35}


@dataclass(frozen=True)
class HostileWorld:
    """Records whose every free text is a payload, made through the services as people would."""

    dataset_version: DatasetVersion
    model: RegisteredModel
    version: ModelVersion
    finding: Finding
    decision: CreditDecision  # overridden, its reasons naming the hostile columns

    def admin_pages(self) -> dict[str, str]:
        """The admin pages that show the hostile texts, by what they show."""
        return {
            "inventory": reverse("admin:riskmodels_registeredmodel_changelist"),
            "model page": reverse("admin:riskmodels_registeredmodel_change", args=[self.model.pk]),
            "dataset version page": reverse("admin:riskmodels_datasetversion_change", args=[self.dataset_version.pk]),
            "model version page": reverse("admin:riskmodels_modelversion_change", args=[self.version.pk]),
            "workspace version page": reverse("admin:riskmodels_workspace_version", args=[self.version.pk]),
            "finding page": reverse("admin:riskmodels_workspace_finding_move", args=[self.finding.pk, "close"]),
            "decision page": reverse("admin:riskmodels_creditdecision_change", args=[self.decision.pk]),
            "override list": reverse("admin:riskmodels_decisionoverride_changelist"),
            "reason texts": reverse("admin:riskmodels_reasontext_changelist"),
        }


def hostile_csv(folder: Path) -> Path:
    """German Credit with two feature columns renamed to the payloads."""
    path = folder / "hostile.csv"
    pd.read_csv(GERMAN_CREDIT).rename(columns=HOSTILE_COLUMNS).to_csv(path, index=False)
    return path


def build_hostile_world(*, developer: Any, validator: Any, officer: Any, underwriter: Any,
                        folder: Path) -> HostileWorld:
    """Upload, register, train, score, override, raise and answer a finding, retire: every text a payload."""
    with hostile_csv(folder).open("rb") as handle:
        dataset_version, _ = dataset_version_create(actor=developer, name="hostile-credit", source=handle,
                                                    filename="hostile.csv", target="creditability",
                                                    roles=GERMAN_CREDIT_ROLES, description=IMG)
    model = registered_model_create(actor=developer, name="retail-pd", owner_team=SCRIPT + IMG, purpose=SCRIPT,
                                    description=IMG)
    registered_model_inventory_update(actor=officer, model=model, changes={
        "scoring_policy": POLICY, "business_use": SCRIPT, "limitations": IMG})
    version = train_version(developer, model, dataset_version)
    # The lifecycle that makes a champion is tested in test_lifecycle; scoring needs its result.
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHAMPION)
    for feature, payload in HOSTILE_COLUMNS.items():
        reason_text_set(actor=officer, registered_model=model, feature=payload, text=f"{payload} ({feature})")
    spec = TrainingSpec.from_dict(version.spec)
    frame = pd.read_csv(GERMAN_CREDIT).rename(columns=HOSTILE_COLUMNS)[list(spec.features)].head(40)
    applications = [{"reference": f"{SCRIPT}-{i}", "features": json.loads(row.to_json())}
                    for i, (_, row) in enumerate(frame.iterrows())]
    scored = client_for(underwriter).post(f"/api/v1/models/{model.name}/score/", format="json",
                                          data={"applications": applications})
    assert scored.status_code == 200, scored.content
    decision = next(d for d in CreditDecision.objects.filter(registered_model=model).order_by("id")
                    if {r["feature"] for r in d.reasons} & set(PAYLOADS))
    decision_override(actor=underwriter, decision=decision,
                      outcome="refer" if decision.outcome != "refer" else "approve",
                      reason="verified_income", text=IMG + SCRIPT)
    finding = finding_raise(actor=validator, version=version, title=SCRIPT + IMG, description=IMG, category="data",
                            severity="medium", due_date=dt.date.today() + dt.timedelta(days=30))
    finding = finding_remediate(actor=developer, finding=finding, remediation=SCRIPT + IMG)
    version_retire(actor=officer, version=version, rationale=SCRIPT + "\n" + IMG)
    return HostileWorld(dataset_version=DatasetVersion.objects.get(pk=dataset_version.pk),
                        model=RegisteredModel.objects.get(pk=model.pk), version=ModelVersion.objects.get(pk=version.pk),
                        finding=Finding.objects.get(pk=finding.pk), decision=decision)


shared_media, _isolated_media = module_media("admin-escaping-media")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media, tmp_path_factory):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        users = {name: team_member(username=username, role=role, password=f"{username}-pass-123")[0]
                 for name, username, role in [("developer", "hana-hostile-dev", Role.DEVELOPER),
                                              ("validator", "vic-validator", Role.VALIDATOR),
                                              ("officer", "olly-officer", Role.COMPLIANCE_OFFICER),
                                              ("underwriter", "una-underwriter", Role.UNDERWRITER)]}
        yield build_hostile_world(**users, folder=tmp_path_factory.mktemp("hostile-csv"))
    # Module-scoped rows outlive the per-test transactions: leave the database as other modules expect it.
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def signed_in(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def reader_of(where: str) -> str:
    """Who opens a page: the validator closes findings; the compliance officer reads everything else."""
    return "validator" if where == "finding page" else "officer"


READERS = {"validator": "vic-validator", "officer": "olly-officer"}


def assert_escaped(page: str, where: str) -> None:
    for payload in PAYLOADS:
        assert payload not in page, f"the {where} sends {payload!r} unescaped"
        assert html.escape(payload) in page, f"the {where} does not show {payload!r} as text"


def test_the_hostile_texts_were_stored_as_typed(world):  # noqa: ANN001
    assert {c["name"] for c in world.dataset_version.schema} >= set(PAYLOADS)
    assert set(HOSTILE_COLUMNS.values()) <= set(TrainingSpec.from_dict(world.version.spec).features)
    assert {r["feature"] for r in world.decision.reasons} & set(PAYLOADS), "the ledger's reasons name a hostile column"
    assert Decision.objects.get(model_version=world.version, action="retire").rationale == SCRIPT + "\n" + IMG


@pytest.mark.parametrize("where", ["inventory", "model page", "dataset version page", "model version page",
                                   "workspace version page", "finding page", "decision page", "override list",
                                   "reason texts"])
def test_every_admin_page_shows_the_hostile_texts_escaped(world, where):  # noqa: ANN001
    response = signed_in(READERS[reader_of(where)]).get(world.admin_pages()[where])
    assert response.status_code == 200
    assert_escaped(response.content.decode(), where)


def test_hostile_model_and_dataset_names_are_refused_with_a_400_naming_the_field(world):  # noqa: ANN001
    client = client_for(get_user_model().objects.get(username="hana-hostile-dev"))
    for name in PAYLOADS:
        model = client.post("/api/v1/models/", format="json",
                            data={"name": name, "owner_team": "risk", "purpose": "a test"})
        dataset = client.post("/api/v1/datasets/", format="multipart", data={
            "name": name, "target": "creditability",
            "file": SimpleUploadedFile("data.csv", GERMAN_CREDIT.read_bytes())})
        for response in (model, dataset):
            assert response.status_code == 400
            assert response.json()["error"]["details"]["field"] == "name"
    assert not RegisteredModel.objects.exclude(pk=world.model.pk).exists()
    assert not DatasetVersion.objects.exclude(pk=world.dataset_version.pk).exists()


def test_the_api_schema_and_its_docs_pages_embed_no_user_text(world):  # noqa: ANN001
    client = signed_in("olly-officer")
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    text = schema.content.decode()
    for payload in PAYLOADS:
        assert payload not in text and json.dumps(payload)[1:-1] not in text and "alert(1)" not in text
    for page in ("/api/docs/", "/api/redoc/"):
        response = client.get(page)
        assert response.status_code == 200
        assert "alert(1)" not in response.content.decode()

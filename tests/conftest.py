"""Shared fixtures: the named personas, API clients holding real tokens, and the demo data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from governance.accounts import api_token_issue, user_upsert
from governance.roles import Role

ROOT = Path(__file__).resolve().parent.parent
GERMAN_CREDIT = ROOT / "demo" / "german_credit.csv"
GERMAN_CREDIT_ROLES = {"personal_status_and_sex": "protected", "age_in_years": "protected", "foreign_worker": "protected"}


def media_settings(media: Path) -> dict:
    """Return the settings that store files in ``media``."""
    from django.conf import settings

    return {"MEDIA_ROOT": media,
            "STORAGES": {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                          "OPTIONS": {"location": str(media)}}}}


def module_media(prefix: str):  # noqa: ANN201
    """Return the (shared_media, _isolated_media) fixtures of a module whose tests read files made once for all.

    Assign them in the module (``shared_media, _isolated_media = module_media("x")``): the second
    overrides the per-test folder below for that module's tests.
    """
    @pytest.fixture(scope="module")
    def shared_media(tmp_path_factory):  # noqa: ANN001,ANN202
        return tmp_path_factory.mktemp(prefix)

    @pytest.fixture(autouse=True)
    def _isolated_media(shared_media, settings):  # noqa: ANN001,ANN202
        for name, value in media_settings(shared_media).items():
            setattr(settings, name, value)
        yield shared_media

    return shared_media, _isolated_media


@pytest.fixture(autouse=True)
def _isolated_media(tmp_path_factory, settings):  # noqa: ANN001
    """Give every test its own storage folder, so file assertions see only its own files."""
    media = tmp_path_factory.mktemp("media")
    for name, value in media_settings(media).items():
        setattr(settings, name, value)
    yield media


@pytest.fixture(autouse=True)
def _fresh_cache():  # noqa: ANN202
    """Start every test with empty throttle counters (the cache outlives the test's transaction)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def stored_files(media: Path) -> list[Path]:
    """List every file under the storage folder."""
    return sorted(p for p in media.rglob("*") if p.is_file())


DEFAULT_TEAM = "default"


def default_team():  # noqa: ANN201
    """Return the team every persona joins and every fixture's dataset and model belong to (made without an
    audit event, as test scenery, so tests that count events see only their own)."""
    from governance.models import Team

    return Team.objects.get_or_create(slug=DEFAULT_TEAM, defaults={"name": DEFAULT_TEAM})[0]


def team_member(*, username: str, role: Role | str, teams: list[str] | None = None, **kwargs):  # noqa: ANN003,ANN201
    """``user_upsert`` for tests: the user joins the default team (or ``teams``, which must exist)."""
    if teams is None:
        default_team()
    return user_upsert(username=username, role=role, teams=teams if teams is not None else [DEFAULT_TEAM], **kwargs)


def _persona(username: str, role: Role | None):  # noqa: ANN202
    if role is None:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.create_user(username=username, password="outsider-pass-123")
    user, _ = team_member(username=username, role=role, password=f"{username}-pass-123")
    return user


@pytest.fixture
def developer(db):  # noqa: ANN001
    return _persona("dana-developer", Role.DEVELOPER)


@pytest.fixture
def other_developer(db):  # noqa: ANN001
    return _persona("omar-developer", Role.DEVELOPER)


@pytest.fixture
def validator(db):  # noqa: ANN001
    return _persona("vera-validator", Role.VALIDATOR)


@pytest.fixture
def compliance_officer(db):  # noqa: ANN001
    return _persona("carl-compliance", Role.COMPLIANCE_OFFICER)


@pytest.fixture
def auditor(db):  # noqa: ANN001
    return _persona("ada-auditor", Role.AUDITOR)


@pytest.fixture
def underwriter(db):  # noqa: ANN001
    return _persona("uma-underwriter", Role.UNDERWRITER)


@pytest.fixture
def outsider(db):  # noqa: ANN001
    return _persona("oscar-outsider", None)


def client_for(user) -> APIClient:  # noqa: ANN001
    """Return an API client authenticated with a real, freshly issued token."""
    token, _ = api_token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def dev_client(developer) -> APIClient:  # noqa: ANN001
    return client_for(developer)


@pytest.fixture
def german_credit_csv(tmp_path) -> Path:  # noqa: ANN001
    """A private copy of the shipped German Credit CSV (tests may alter it)."""
    copy = tmp_path / "german_credit.csv"
    shutil.copyfile(GERMAN_CREDIT, copy)
    return copy


def register_demo_dataset(user, path: Path = GERMAN_CREDIT, name: str = "german-credit"):  # noqa: ANN001,ANN201
    """Register German Credit through the service, as the developer persona."""
    from riskmodels.services.datasets import dataset_version_create

    with path.open("rb") as handle:
        version, _ = dataset_version_create(actor=user, name=name, source=handle, filename=path.name,
                                            target="creditability", roles=GERMAN_CREDIT_ROLES)
    return version


def register_model(user, name: str = "retail-pd"):  # noqa: ANN001,ANN201
    from riskmodels.services.registry import registered_model_create

    return registered_model_create(actor=user, name=name, owner_team="retail credit risk",
                                   purpose="Probability of default for retail instalment loans")


@pytest.fixture
def german_credit_version(developer):  # noqa: ANN001,ANN201
    return register_demo_dataset(developer)


@pytest.fixture
def retail_model(developer):  # noqa: ANN001,ANN201
    return register_model(developer)


def train_version(user, registered_model, dataset_version, algorithm: str = "logistic_regression"):  # noqa: ANN001,ANN201
    """Train a version in this process, as a worker would, and drop the jobs training queues after it
    (its test-split evaluation and battery): for tests that need a fitted version, not its evidence."""
    from riskmodels.jobs.kinds import job_execute
    from riskmodels.models import Job, JobStatus, ModelVersion
    from riskmodels.services.training import training_job_create

    job = training_job_create(actor=user, registered_model=registered_model, dataset_version=dataset_version,
                              request={"algorithm": algorithm})
    job_execute(job_id=job.pk)
    Job.objects.filter(status=JobStatus.QUEUED).delete()
    return ModelVersion.objects.get(training_job=job)


def train_submittable_version(user, registered_model, dataset_version):  # noqa: ANN001,ANN201
    """Train a logistic regression and give it what submission needs: its test-split evaluation
    (queued by training) and a finished SHAP report. Runs the jobs in this process, as the workers would."""
    from riskmodels.jobs.kinds import chunk_execute, job_execute
    from riskmodels.models import Job, JobChunk, JobStatus, ModelVersion
    from riskmodels.services.explanations import explanation_job_create
    from riskmodels.services.training import training_job_create

    job = training_job_create(actor=user, registered_model=registered_model, dataset_version=dataset_version,
                              request={"algorithm": "logistic_regression"})
    job_execute(job_id=job.pk)
    version = ModelVersion.objects.get(training_job=job)
    for queued in Job.objects.filter(model_version=version, status=JobStatus.QUEUED):  # its test-split evaluation
        job_execute(job_id=queued.pk)
    report_job = explanation_job_create(actor=user, model_version=version)
    job_execute(job_id=report_job.pk)
    for chunk_id in JobChunk.objects.filter(job=report_job).order_by("index").values_list("pk", flat=True):
        chunk_execute(chunk_id=chunk_id)
    return version


def run_queued_jobs(*, drain: bool = False) -> None:
    """Run the queued jobs (and their chunks) in this process, as the workers would.

    Without ``drain``, only the jobs queued now; with it, also those they queue, until none is left.
    """
    from riskmodels.jobs.kinds import chunk_execute, job_execute
    from riskmodels.models import Job, JobChunk, JobStatus

    while True:
        queued = list(Job.objects.filter(status=JobStatus.QUEUED).order_by("id").values_list("pk", flat=True))
        for job_id in queued:
            job_execute(job_id=job_id)
            for chunk_id in JobChunk.objects.filter(job_id=job_id).order_by("index").values_list("pk", flat=True):
                chunk_execute(chunk_id=chunk_id)
        if not drain or not queued:
            return

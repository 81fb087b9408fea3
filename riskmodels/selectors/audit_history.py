"""Reads over the audit log about the ML domain: which events concern a model, and the inventory as of a moment.

The inventory as of a moment is reconstructed from the audit log alone (a fold over the events
recorded up to it), never from the current rows: the rows say what is true now, the log says
what was true then, and it is the log an examiner can verify.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db.models import CharField, Q, Subquery
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from governance.exceptions import NotFound, ValidationFailed
from governance.models import AuditEvent
from governance.policy import Capability, require
from riskmodels.selectors import registered_model_get_for_user, registered_model_list_for_user

# A finding that is neither closed, dismissed nor still a battery's draft: it blocks or conditions approval.
OPEN_FINDING_STATUSES = frozenset({"open", "remediated"})
APPROVED_STATUSES = frozenset({"approved", "champion"})


def _is_date(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text))


def parse_moment(value: str, *, field: str, end_of_day: bool = False) -> dt.datetime:
    """Return ``value`` (YYYY-MM-DD or an ISO datetime; naive means UTC) as an aware UTC datetime.

    A bare date means the start of that day in UTC, or with ``end_of_day`` the start of the next
    one (an upper bound that takes in the whole day). Raise ValidationFailed naming ``field``.
    """
    # An unescaped "+02:00" in a query string arrives as " 02:00".
    text = (value or "").strip().replace(" ", "+")
    try:
        # parse_datetime takes a bare date for midnight: test for a date first.
        day = parse_date(text) if _is_date(text) else None
        moment = parse_datetime(text) if day is None else None
    except ValueError:
        moment = day = None
    if moment is None and day is None:
        raise ValidationFailed(f"{field} must be a date (YYYY-MM-DD) or an ISO 8601 datetime; got {value!r}",
                               code="invalid", details={"field": field})
    if moment is None:
        moment = dt.datetime.combine(day + dt.timedelta(days=1 if end_of_day else 0), dt.time(), tzinfo=dt.UTC)
    elif timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def moment_until(value: str, *, field: str) -> tuple[Q, dt.datetime, bool]:
    """Return the filter on ``created_at`` for "up to ``value``", its bound and whether the bound is included.

    A date takes in its whole day (before the next day starts); a datetime is taken as given,
    its instant included.
    """
    bound = parse_moment(value, field=field, end_of_day=True)
    whole_day = _is_date((value or "").strip())
    return (Q(created_at__lt=bound) if whole_day else Q(created_at__lte=bound)), bound, not whole_day


def _refers_to(related: Any, registered_model: Any) -> Q | None:
    """Return the filter on ``related``'s rows that point at the model or one of its versions, or None."""
    from riskmodels.models import ModelVersion, RegisteredModel

    conditions = Q()
    for fk in related._meta.concrete_fields:
        if fk.is_relation and fk.related_model is RegisteredModel:
            conditions |= Q(**{fk.name: registered_model})
        elif fk.is_relation and fk.related_model is ModelVersion:
            conditions |= Q(**{f"{fk.name}__registered_model": registered_model})
    return conditions or None


def registered_model_audit_filter(*, user: Any, name: str) -> Q:
    """Return the filter on audit events that concern the registered model ``name`` (for exports).

    The rule: an event concerns a model when its target is the model itself, or a row of the ML
    domain that refers to the model or to one of its versions by a foreign key (its versions,
    their decisions, findings, evaluations, SHAP reports, validation runs, periodic reviews,
    monitoring references and runs, alerts, jobs, reason texts, ledger entries), or when its
    ``after`` names the model under ``registered_model``. Raise ValidationFailed for a model the
    user cannot see or that does not exist (a bad filter, not a missing resource).
    """
    try:
        model = registered_model_get_for_user(user=user, name=name)
    except NotFound:
        raise ValidationFailed(f"model {name!r} does not exist", code="unknown_model",
                               details={"field": "model"}) from None
    matches = Q(target_type=model._meta.label_lower, target_id=str(model.pk)) | Q(after__registered_model=model.name)
    for related in apps.get_app_config("riskmodels").get_models():
        conditions = _refers_to(related, model)
        if conditions is not None:
            ids = related.objects.filter(conditions).annotate(audit_id=Cast("pk", CharField())).values("audit_id")
            matches |= Q(target_type=related._meta.label_lower, target_id__in=Subquery(ids))
    return matches


# --- The inventory as of a moment -----------------------------------------------------------------------

@dataclass
class _Version:
    id: int
    model_id: int | None
    number: int | None
    status: str = "trained"
    since: str = ""
    approved_at: str | None = None


@dataclass
class _Model:
    id: int
    name: str
    created_at: str
    versions: dict[int, _Version] = field(default_factory=dict)


def _fold(events: Any) -> tuple[dict[int, _Model], dict[int, _Version], dict[int, dict[str, Any]], int]:
    """Replay the events that shape the inventory; return models, versions, findings and the last seq seen."""
    models: dict[int, _Model] = {}
    by_name: dict[str, int] = {}
    versions: dict[int, _Version] = {}
    findings: dict[int, dict[str, Any]] = {}
    last_seq = 0
    for event in events:
        last_seq = event.seq
        after, at = event.after or {}, event.created_at.isoformat()
        if not event.target_id.isdigit():
            continue
        target = int(event.target_id)
        if event.action == "registered_model.created":
            models[target] = _Model(id=target, name=after.get("name", event.target_repr), created_at=at)
            by_name[models[target].name] = target
        elif event.action == "model_version.created":
            versions[target] = _Version(id=target, model_id=by_name.get(after.get("registered_model")),
                                        number=after.get("version"), since=at)
        elif event.action.startswith("model_version.") and "status" in after:
            # Lifecycle moves carry the new status; older events lack the model, which creation gave.
            version = versions.setdefault(target, _Version(id=target, model_id=after.get("registered_model_id"),
                                                           number=after.get("version")))
            if version.model_id is None:
                version.model_id = after.get("registered_model_id")
            if after["status"] != version.status:
                version.status, version.since = after["status"], at
            if event.action == "model_version.approve" and after["status"] == "approved":
                version.approved_at = at
        elif event.action.startswith("finding.") and "status" in after:
            finding = findings.setdefault(target, {"id": target, "raised_at": at})
            finding.update({"version_id": after.get("model_version", finding.get("version_id")),
                            "title": after.get("title", finding.get("title")),
                            "severity": after.get("severity", finding.get("severity")),
                            "status": after["status"], "since": at})
    for version in versions.values():
        if version.model_id in models:
            models[version.model_id].versions[version.id] = version
    return models, versions, findings, last_seq


def _version_out(version: _Version) -> dict[str, Any]:
    return {"id": version.id, "version": version.number, "status": version.status, "since": version.since,
            "approved_at": version.approved_at}


def inventory_as_of_for_user(*, user: Any, moment: str) -> dict[str, Any]:
    """Return which version of each model was champion, which were approved and which findings were open.

    ``moment`` is a date (YYYY-MM-DD: as at the end of that day, UTC) or an ISO datetime (as at
    that instant, events recorded at it included). Built from the audit log alone, by a fold over
    the events recorded up to the moment; only models the user may see now are listed. For
    holders of both domain.read and audit.read.
    """
    require(user, Capability.DOMAIN_READ)
    require(user, Capability.AUDIT_READ)
    up_to, bound, _ = moment_until(moment, field="date")
    events = AuditEvent.objects.filter(up_to)
    relevant = Q(action__in=("registered_model.created", "model_version.created")) | \
        Q(action__startswith="model_version.", after__has_key="status") | \
        Q(action__startswith="finding.", after__has_key="status")
    models, versions, findings, _ = _fold(events.filter(relevant).order_by("seq").iterator(chunk_size=2000))
    visible = set(registered_model_list_for_user(user=user).values_list("pk", flat=True))
    out = []
    for model in sorted(models.values(), key=lambda m: m.name):
        if model.id not in visible:
            continue
        held = sorted(model.versions.values(), key=lambda v: (v.number or 0, v.id))
        champion = next((v for v in held if v.status == "champion"), None)
        out.append({
            "id": model.id, "name": model.name, "registered_at": model.created_at,
            "champion": _version_out(champion) if champion else None,
            "approved": [_version_out(v) for v in held if v.status in APPROVED_STATUSES],
            "versions": [_version_out(v) for v in held],
            "open_findings": [
                {**finding, "version": versions[finding["version_id"]].number}
                for finding in sorted(findings.values(), key=lambda f: f["id"])
                if finding["status"] in OPEN_FINDING_STATUSES and finding.get("version_id") in model.versions
            ],
        })
    last = events.order_by("-seq").values_list("seq", flat=True).first()
    return {"as_of": moment.strip(), "bound": bound.isoformat(), "last_seq": last or 0, "models": out}

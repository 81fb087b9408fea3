"""Register dataset versions: convert the upload to Parquet, profile it, store it, audit it."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max

from governance.audit import audit_chain_lock, audit_record
from governance.exceptions import Conflict, PayloadTooLarge, ValidationFailed
from governance.policy import Capability, require, team_for_new_object
from riskmodels.exceptions import DatasetRejected
from riskmodels.ml.ingest import ROLES, IngestError, IngestResult, ingest
from riskmodels.ml.protected import DEFAULT_CATALOGUE, Characteristic, protected_suspects
from riskmodels.models import DATASET_NAME_VALIDATOR, Dataset, DatasetVersion, ProtectedCharacteristic

logger = logging.getLogger(__name__)


_ROLES_SHAPE = 'roles must be an object mapping column names to roles, e.g. {"age": "protected"}'


def _check_name(name: str) -> None:
    if not DATASET_NAME_VALIDATOR.regex.match(name or ""):
        raise ValidationFailed(str(DATASET_NAME_VALIDATOR.message), code="invalid_name", details={"field": "name"})


def dataset_roles_parse(raw: str | None) -> dict[str, str]:
    """Parse the column roles as typed into a form field or a multipart request (JSON text).

    Blank means no declared roles. Raises ValidationFailed naming the problem: bad JSON (with
    its line and column), something other than an object, or an unknown role.
    """
    if raw is None or not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"roles is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                               code="invalid", details={"field": "roles"}) from None
    if not isinstance(parsed, dict):
        raise ValidationFailed(_ROLES_SHAPE, code="invalid_roles", details={"field": "roles"})
    return _check_roles(parsed)


def _check_roles(roles: Mapping[str, str] | None) -> dict[str, str]:
    if roles is None:
        return {}
    if not isinstance(roles, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in roles.items()):
        raise ValidationFailed(_ROLES_SHAPE, code="invalid_roles", details={"field": "roles"})
    bad = {column: role for column, role in roles.items() if role not in ROLES}
    if bad:
        column, role = next(iter(bad.items()))
        raise ValidationFailed(
            f"column {column!r} has unknown role {role!r}; use one of: {', '.join(ROLES)}",
            code="invalid_role", details={"field": "roles", "column": column},
        )
    return dict(roles)


def _ingest_to_temp(source: str | Path | IO[bytes], *, filename: str, target: str | None,
                    roles: dict[str, str]) -> tuple[IngestResult, Path]:
    fd, tmp = tempfile.mkstemp(suffix=".parquet", dir=settings.FILE_UPLOAD_TEMP_DIR)
    os.close(fd)
    os.unlink(tmp)  # ingest writes it atomically itself
    try:
        result = ingest(source, tmp, target=target or None, roles=roles, filename=filename,
                        max_decoded_bytes=settings.DATASET_MAX_DECODED_BYTES)
    except IngestError as exc:
        if exc.code == "too_large":
            raise PayloadTooLarge(f"{exc} (DATASET_MAX_DECODED_BYTES)", code="decoded_too_large") from None
        raise DatasetRejected(str(exc), code=exc.code, details={"column": exc.column} if exc.column else {}) from None
    return result, Path(tmp)


def _catalogue_words(text: Any, field: str, *, required: bool) -> str:
    if not isinstance(text, str):
        raise ValidationFailed(f"{field} must be comma-separated words", code="invalid", details={"field": field})
    found = [w.strip().lower() for w in text.split(",") if w.strip()]
    bad = [w for w in found if not re.fullmatch(r"[a-z0-9]+\*?", w)]
    if bad or (required and not found):
        raise ValidationFailed(f"{field} must be comma-separated words of letters and digits (a trailing * matches a "
                               f"word's start); got {', '.join(bad) or 'none'}", code="invalid",
                               details={"field": field})
    return ",".join(found)


def protected_characteristic_save(*, actor: Any, name: str, name_words: str, value_words: str = "",
                                  active: bool = True, characteristic: ProtectedCharacteristic | None = None,
                                  ) -> ProtectedCharacteristic:
    """Add or change an entry of the protected-characteristics catalogue (compliance officers); audited."""
    require(actor, Capability.PROTECTED_CATALOGUE_EDIT)
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("a characteristic needs a name", code="invalid", details={"field": "name"})
    fields = {"name": name.strip(), "name_words": _catalogue_words(name_words, "name_words", required=True),
              "value_words": _catalogue_words(value_words, "value_words", required=False), "active": bool(active)}
    with transaction.atomic():
        before = None
        if characteristic is None:
            if not ProtectedCharacteristic.objects.exists():
                # The first edit makes the catalogue explicit: start from the defaults the service used.
                for item in DEFAULT_CATALOGUE:
                    ProtectedCharacteristic.objects.create(name=item.name, name_words=",".join(item.name_words),
                                                           value_words=",".join(item.value_words))
            characteristic, _ = ProtectedCharacteristic.objects.get_or_create(name=fields["name"], defaults=fields)
        else:
            before = {k: getattr(characteristic, k) for k in fields}
        for key, value in fields.items():
            setattr(characteristic, key, value)
        try:
            characteristic.save()
        except IntegrityError:
            raise ValidationFailed(f"a characteristic named {fields['name']!r} exists already", code="duplicate_name",
                                   details={"field": "name"}) from None
        audit_record(actor=actor, action="protected_characteristic.saved", target=characteristic, before=before,
                     after=fields)
    return characteristic


def protected_characteristic_delete(*, actor: Any, characteristic: ProtectedCharacteristic) -> None:
    """Remove an entry of the catalogue (compliance officers); audited. Deactivating keeps its history clearer."""
    require(actor, Capability.PROTECTED_CATALOGUE_EDIT)
    with transaction.atomic():
        audit_record(actor=actor, action="protected_characteristic.deleted", target=characteristic,
                     before={"name": characteristic.name, "name_words": characteristic.name_words,
                             "value_words": characteristic.value_words, "active": characteristic.active})
        characteristic.delete()


def protected_catalogue() -> list[Characteristic]:
    """Return the active catalogue of protected characteristics (the defaults while none is configured)."""
    rows = list(ProtectedCharacteristic.objects.all())
    if not rows:
        return list(DEFAULT_CATALOGUE)

    def split(text: str) -> tuple[str, ...]:
        return tuple(w.strip().lower() for w in text.split(",") if w.strip())

    return [Characteristic(r.name, split(r.name_words), split(r.value_words)) for r in rows if r.active]


def _flag_protected_suspects(profile: dict[str, Any]) -> None:
    """Record in the profile the feature columns that look like a protected characteristic, with a warning each."""
    suspects = protected_suspects(profile.get("columns") or {}, protected_catalogue())
    profile["protected_suspects"] = suspects
    for suspect in suspects:
        profile.setdefault("warnings", []).append(
            f"Column {suspect['column']!r} looks like a protected characteristic ({suspect['characteristic']}, by its "
            f"{suspect['matched_by']}) and has no role: it cannot be a feature until its role is decided.")


def dataset_version_create(
    *,
    actor: Any,
    name: str,
    source: str | Path | IO[bytes],
    filename: str = "",
    size: int | None = None,
    target: str | None = None,
    roles: Mapping[str, str] | None = None,
    description: str = "",
    note: str = "",
    team: str | None = None,
) -> tuple[DatasetVersion, bool]:
    """Register ``source`` (CSV or Parquet) as the next version of dataset ``name``.

    A new dataset goes in ``team`` (a slug; default: the actor's only team); a new version of an
    existing one stays in that dataset's team, which the actor must be a member of. Returns
    ``(version, created)``. Uploading content and schema identical to an existing version of the
    same dataset returns that version with ``created=False``. Nothing is stored, and nothing
    audited, when the input is rejected.
    """
    require(actor, Capability.DATASET_UPLOAD)
    _check_name(name)
    owning_team = _owning_team(actor, name, team)
    roles = _check_roles(roles)
    limit = settings.DATASET_MAX_UPLOAD_BYTES
    if size is not None and size > limit:
        raise PayloadTooLarge(f"the file is {size} bytes; the limit is {limit} bytes (DATASET_MAX_UPLOAD_BYTES)",
                              code="file_too_large")

    result, tmp_path = _ingest_to_temp(source, filename=filename, target=target, roles=roles)
    _flag_protected_suspects(result.profile)
    try:
        schema = [column.to_dict() for column in result.columns]
        existing = DatasetVersion.objects.filter(dataset__name=name, sha256=result.sha256).select_related("dataset")
        for candidate in existing:
            if candidate.schema == schema:
                return candidate, False

        # Content-addressed: the same bytes always land at the same path.
        storage_path = f"datasets/{name}/{result.sha256}.parquet"
        stored_here = False
        if not default_storage.exists(storage_path):
            with open(tmp_path, "rb") as handle:
                storage_path = default_storage.save(storage_path, File(handle))
            stored_here = True
        try:
            version = _record_version(actor=actor, name=name, team=owning_team, description=description, note=note,
                                      result=result, schema=schema, target=target or "",
                                      storage_path=storage_path, filename=filename)
        except BaseException:
            # The database refused the row: take back the file so nothing is half-written.
            if stored_here and not DatasetVersion.objects.filter(storage_path=storage_path).exists():
                default_storage.delete(storage_path)
            raise
        return version, True
    finally:
        tmp_path.unlink(missing_ok=True)


def _owning_team(actor: Any, name: str, slug: str | None) -> Any:
    """Return the team the upload goes in: the existing dataset's, or the one named (or the actor's only one)."""
    existing = Dataset.objects.filter(name=name).select_related("team").first()
    if existing is None:
        return team_for_new_object(actor, slug)
    if not actor.teams.filter(pk=existing.team_id).exists():
        # Names are unique across teams; say no more than that this one is taken.
        raise Conflict(f"the dataset name {name!r} is taken; choose another name", code="duplicate_name",
                       details={"field": "name"})
    if slug and slug != existing.team.slug:
        raise ValidationFailed(f"dataset {name!r} belongs to team {existing.team.slug!r}, not {slug!r}: a dataset "
                               "never changes team", code="team_mismatch", details={"field": "team"})
    return existing.team


def _record_version(*, actor: Any, name: str, team: Any, description: str, note: str, result: IngestResult,
                    schema: list[dict[str, Any]], target: str, storage_path: str, filename: str) -> DatasetVersion:
    for attempt in range(3):
        try:
            with transaction.atomic():
                dataset, created = Dataset.objects.get_or_create(
                    name=name, defaults={"description": description, "created_by": actor, "team": team}
                )
                if created:
                    audit_record(actor=actor, action="dataset.created", target=dataset,
                                 after={"name": name, "team": team.slug, "description": description})
                # Lock the dataset row so concurrent uploads number their versions in turn; the
                # audit chain first, and no key lock (registered_model_lock says why).
                audit_chain_lock()
                dataset = Dataset.objects.select_for_update(no_key=True).get(pk=dataset.pk)
                latest = dataset.versions.aggregate(m=Max("version"))["m"] or 0
                version = DatasetVersion.objects.create(
                    dataset=dataset, version=latest + 1, sha256=result.sha256, storage_path=storage_path,
                    size_bytes=result.size_bytes, n_rows=result.n_rows, n_columns=result.n_columns,
                    schema=schema, profile=result.profile, target=target, source_filename=filename[:255],
                    source_format=result.source_format, note=note, created_by=actor,
                )
                audit_record(
                    actor=actor, action="dataset_version.registered", target=version,
                    after={
                        "dataset": name, "version": version.version, "sha256": result.sha256,
                        "n_rows": result.n_rows, "n_columns": result.n_columns, "schema": schema,
                        "target": target, "source_filename": filename, "storage_path": storage_path,
                        "warnings": result.profile.get("warnings", []),
                    },
                )
                return version
        except IntegrityError:
            # Two first uploads of a new name raced on the unique constraint: retry once more.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")

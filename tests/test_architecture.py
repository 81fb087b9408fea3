"""The import rules of ARCHITECTURE.md, kept by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return [p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]


def test_the_ml_library_imports_no_django_and_nothing_of_the_apps():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path)
                                            if n.split(".")[0] in {"django", "rest_framework", "celery", "governance"}
                                            or (n.startswith("riskmodels") and not n.startswith("riskmodels.ml")))
        for path in _modules("riskmodels/ml")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_riskmodels_uses_only_the_leaf_modules_of_governance():
    allowed = {"governance.audit", "governance.exceptions", "governance.policy", "governance.roles", "governance.api.errors",
               "governance.api.permissions", "governance.api.views", "governance.models"}
    offenders = {}
    for path in _modules("riskmodels"):
        bad = sorted(n for n in _imports(path) if n.startswith("governance") and n not in allowed)
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_governance_reads_riskmodels_only_through_selectors_and_services():
    offenders = {}
    for path in _modules("governance"):
        bad = sorted(n for n in _imports(path) if n.startswith("riskmodels")
                     and not (n.startswith("riskmodels.selectors") or n.startswith("riskmodels.services")))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_audit_module_is_a_leaf_that_imports_no_domain_app():
    assert not {n for n in _imports(ROOT / "governance" / "audit.py") if n.startswith("riskmodels")}


def test_no_model_change_is_missing_a_migration(db):  # noqa: ANN001
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()

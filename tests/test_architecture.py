"""The import rules of ARCHITECTURE.md, kept by reading every module's imports, and the rule that
every permission check goes through governance/policy.py, kept by reading every module's code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from governance.roles import Role

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
    allowed = {"governance.audit", "governance.exceptions", "governance.policy", "governance.roles", "governance.models",
               "governance.admin_base", "governance.api.errors", "governance.api.permissions", "governance.api.views",
               "governance.api.throttles"}
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


# The modules that may read roles: the policy decides, accounts assigns roles and records
# them in the audit log. Assigning a role (create_api_user, demo_setup), defining the roles
# (roles.py) or rendering a refusal (api/errors.py) is no check, so the rule lets them pass.
ROLE_CODE_ALLOWED = {"governance/policy.py", "governance/accounts.py"}
ROLE_READERS = {"user_roles", "user_has_any_role"}
ROLE_VALUES = {role.value for role in Role}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_role(node: ast.AST) -> bool:
    # A member (Role.AUDITOR) or its value spelt out ("auditor").
    if isinstance(node, ast.Constant):
        return node.value in ROLE_VALUES
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Role"


def inline_permission_checks(source: str) -> list[str]:
    """Return each permission check in ``source`` written without the policy, as "line N: what"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _name(node) in ROLE_READERS:
            found.append(f"line {node.lineno}: calls {_name(node)}()")
        elif isinstance(node, ast.Compare) and any(
                _is_role(n) for side in (node.left, *node.comparators) for n in ast.walk(side)):
            found.append(f"line {node.lineno}: compares against a role")
        elif isinstance(node, ast.Raise) and node.exc is not None and _name(node.exc) == "PermissionDenied":
            found.append(f"line {node.lineno}: raises PermissionDenied itself")
    return found


def test_every_permission_check_goes_through_the_policy():
    offenders = {}
    for path in _modules("governance") + _modules("riskmodels"):
        relative = path.relative_to(ROOT).as_posix()
        if relative not in ROLE_CODE_ALLOWED:
            found = inline_permission_checks(path.read_text())
            if found:
                offenders[relative] = found
    assert offenders == {}, "use governance.policy (require, allowed, refusal) instead"


def test_each_module_allowed_to_read_roles_still_needs_it():
    # An exemption that nothing uses any more would let a new inline check in unnoticed.
    assert all(inline_permission_checks((ROOT / path).read_text()) for path in ROLE_CODE_ALLOWED)


INLINE_CHECKS = {
    "a role read": "if Role.COMPLIANCE_OFFICER in user_roles(request.user):\n    pass\n",
    "a role-set helper": "ok = user_has_any_role(user, CAN_READ_AUDIT_LOG)\n",
    "a comparison with a role": "if role == Role.AUDITOR:\n    pass\n",
    "a role among others": "if role not in {Role.DEVELOPER, Role.VALIDATOR}:\n    pass\n",
    "a role by its name": "if 'compliance_officer' in group_names:\n    pass\n",
    "a refusal of its own": "raise PermissionDenied('developers only')\n",
    "a refusal through a module": "raise exceptions.PermissionDenied\n",
}


@pytest.mark.parametrize("case", list(INLINE_CHECKS))
def test_the_rule_finds_a_reintroduced_inline_check(case):  # noqa: ANN001
    assert inline_permission_checks(INLINE_CHECKS[case])


def test_the_rule_lets_policy_calls_and_role_assignment_pass():
    source = ("require(actor, Capability.DATASET_UPLOAD)\n"
              "if allowed(request.user, Capability.REASON_TEXT_EDIT):\n    pass\n"
              "DEMO_USERS = {'dev': Role.DEVELOPER}\n"
              "user_upsert(username='x', role=Role.AUDITOR)\n"
              "try:\n    pass\nexcept PermissionDenied:\n    raise\n")
    assert inline_permission_checks(source) == []


def test_no_model_change_is_missing_a_migration(db):  # noqa: ANN001
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def _module_graph() -> dict[str, set[str]]:
    """Map each module of the two apps to the modules it imports, at any depth of the code.

    Imports inside functions count: a deferred import hides a cycle from Python, not from
    the reader. ``from pkg import name`` points at ``pkg.name`` when that is a module.
    """
    modules: dict[str, Path] = {}
    for folder in ("governance", "riskmodels"):
        for path in _modules(folder):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.update(known(f"{node.module}.{alias.name}") for alias in node.names)
        graph[module] = {t for t in targets if t and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the groups of modules that import each other in a circle (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_services_tasks_circle_hidden_in_a_function():
    graph = {"riskmodels.services.jobs": {"riskmodels.tasks"}, "riskmodels.tasks": {"riskmodels.services.training"},
             "riskmodels.services.training": {"riskmodels.services.jobs"}, "riskmodels.models": set()}
    assert _cycles(graph) == [["riskmodels.services.jobs", "riskmodels.services.training", "riskmodels.tasks"]]


def test_no_modules_import_each_other_in_a_circle():
    assert _cycles(_module_graph()) == []


def test_nothing_imports_the_celery_tasks_they_are_sent_by_name():
    importers = sorted(module for module, targets in _module_graph().items()
                       if {"riskmodels.tasks", "governance.tasks"} & targets)
    assert importers == ["governance.api.audit"]  # the audit checkpoint, sent from its API view


def test_every_task_name_the_runner_sends_is_a_registered_task():
    from governance.celery import app
    from riskmodels.jobs.dispatch import TASK_NAMES

    app.loader.import_default_modules()
    assert set(TASK_NAMES) <= set(app.tasks), sorted(set(TASK_NAMES) - set(app.tasks))


def test_every_job_kind_has_a_runner():
    from riskmodels.jobs.kinds import KINDS
    from riskmodels.models import JobKind

    assert set(KINDS) == set(JobKind)

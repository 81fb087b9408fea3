"""Teams: who sees which team (the policy), membership and the all-teams flag (audited services, the admin,
the command line), and the migration that puts rows made before teams in a default team."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from governance.accounts import team_create, user_upsert
from governance.exceptions import Conflict, PermissionDenied, ValidationFailed
from governance.models import AuditEvent, Team, UserProfile
from governance.policy import team_for_new_object, team_ids_visible_to
from governance.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams():  # noqa: ANN201
    return {slug: Team.objects.create(name=slug, slug=slug) for slug in ("alpha", "beta")}


@pytest.mark.parametrize("role", list(Role))
def test_a_user_sees_the_teams_they_belong_to(teams, role):  # noqa: ANN001
    user, _ = user_upsert(username="u", role=role, teams=["alpha"])
    assert team_ids_visible_to(user) == {teams["alpha"].pk}


@pytest.mark.parametrize(("role", "sees_all"), [(Role.VALIDATOR, True), (Role.COMPLIANCE_OFFICER, True),
                                                (Role.AUDITOR, True), (Role.DEVELOPER, False),
                                                (Role.UNDERWRITER, False)])
def test_only_oversight_roles_see_every_team_with_the_flag(teams, role, sees_all):  # noqa: ANN001
    user, _ = user_upsert(username="u", role=role, teams=["alpha"], sees_all_teams=True)
    assert team_ids_visible_to(user) == (None if sees_all else {teams["alpha"].pk})


def test_a_user_without_a_role_sees_no_team(teams, django_user_model):  # noqa: ANN001
    user = django_user_model.objects.create_user("nobody")
    teams["alpha"].members.add(user)
    assert team_ids_visible_to(user) == frozenset()


def test_a_new_object_goes_in_the_named_team_or_the_only_one(teams):  # noqa: ANN001
    one, _ = user_upsert(username="one", role=Role.DEVELOPER, teams=["alpha"])
    assert team_for_new_object(one, None) == teams["alpha"]
    with pytest.raises(PermissionDenied, match="not a member of team 'beta'"):
        team_for_new_object(one, "beta")
    both, _ = user_upsert(username="both", role=Role.DEVELOPER, teams=["alpha", "beta"])
    with pytest.raises(ValidationFailed, match="say which team: you are in alpha, beta"):
        team_for_new_object(both, None)
    assert team_for_new_object(both, "beta") == teams["beta"]
    none, _ = user_upsert(username="none", role=Role.DEVELOPER)
    with pytest.raises(PermissionDenied, match="belong to no team"):
        team_for_new_object(none, None)


def test_seeing_every_team_does_not_let_one_create_in_them(teams):  # noqa: ANN001
    auditor, _ = user_upsert(username="a", role=Role.AUDITOR, sees_all_teams=True)
    with pytest.raises(PermissionDenied, match="not a member"):
        team_for_new_object(auditor, "alpha")


def test_team_membership_and_the_flag_are_audited_on_the_user(teams):  # noqa: ANN001
    user_upsert(username="sam", role=Role.VALIDATOR, teams=["alpha"])
    user_upsert(username="sam", role=Role.VALIDATOR, teams=["alpha", "beta"], sees_all_teams=True)
    event = AuditEvent.objects.filter(action="user.updated").get()
    assert (event.before["teams"], event.before["sees_all_teams"]) == (["alpha"], False)
    assert (event.after["teams"], event.after["sees_all_teams"]) == (["alpha", "beta"], True)


def test_an_unknown_team_is_refused_and_nothing_is_written(teams):  # noqa: ANN001
    count = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed, match="unknown team.*gamma"):
        user_upsert(username="sam", role=Role.DEVELOPER, teams=["alpha", "gamma"])
    assert AuditEvent.objects.count() == count
    assert not Team.objects.filter(members__username="sam").exists()


def test_a_team_is_created_once_audited_and_only_by_compliance_officers(teams):  # noqa: ANN001
    officer, _ = user_upsert(username="carl", role=Role.COMPLIANCE_OFFICER)
    team = team_create(actor=officer, name="SME Credit")
    assert team.slug == "sme-credit"
    event = AuditEvent.objects.filter(action="team.created").get()
    assert (event.actor_username, event.after["slug"]) == ("carl", "sme-credit")
    with pytest.raises(Conflict):
        team_create(actor=officer, name="SME Credit")
    developer, _ = user_upsert(username="dana", role=Role.DEVELOPER)
    with pytest.raises(PermissionDenied, match="only compliance officers manage teams"):
        team_create(actor=developer, name="Rogue")


def test_create_api_user_sets_teams_and_the_flag(teams):  # noqa: ANN001
    out = io.StringIO()
    call_command("create_api_user", "rita", "--role", "auditor", "--team", "alpha", "--all-teams", stdout=out)
    assert "teams: alpha; sees all teams" in out.getvalue()
    assert UserProfile.objects.get(user__username="rita").sees_all_teams
    call_command("create_api_user", "gus", "--role", "developer", "--team", "gamma", "--create-team",
                 stdout=io.StringIO())
    assert list(Team.objects.get(slug="gamma").members.values_list("username", flat=True)) == ["gus"]
    with pytest.raises(CommandError, match="unknown team"):
        call_command("create_api_user", "hal", "--role", "developer", "--team", "delta", stdout=io.StringIO())


def test_a_compliance_officer_assigns_members_in_the_team_admin_and_it_is_audited(teams, client):  # noqa: ANN001
    officer, _ = user_upsert(username="carl", role=Role.COMPLIANCE_OFFICER, password="carl-pass-123")
    dev, _ = user_upsert(username="dana", role=Role.DEVELOPER)
    client.force_login(officer)
    response = client.post(f"/admin/governance/team/{teams['alpha'].pk}/change/",
                           {"name": "alpha", "slug": "alpha", "members": [dev.pk]})
    assert response.status_code == 302, response.content[:500]
    event = AuditEvent.objects.filter(action="team.updated").get()
    assert (event.before["members"], event.after["members"], event.actor_username) == ([], ["dana"], "carl")


def test_a_developer_cannot_open_the_team_admin(teams, client):  # noqa: ANN001
    dev, _ = user_upsert(username="dana", role=Role.DEVELOPER, password="dana-pass-123")
    client.force_login(dev)
    assert client.get("/admin/governance/team/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_rows_made_before_teams_in_a_default_team_with_every_user(django_user_model):  # noqa: ANN001
    executor = MigrationExecutor(connection)
    before = [("riskmodels", "0017_documentation_pack"), ("governance", "0003_teams")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = django_user_model.objects.create_user("legacy")
    dataset = old.get_model("riskmodels", "Dataset").objects.create(name="legacy-data")
    model = old.get_model("riskmodels", "RegisteredModel").objects.create(name="legacy-pd", owner_team="x",
                                                                          purpose="y")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    default = Team.objects.get(slug="default")
    from riskmodels.models import Dataset, RegisteredModel

    assert Dataset.objects.get(pk=dataset.pk).team_id == default.pk
    assert RegisteredModel.objects.get(pk=model.pk).team_id == default.pk
    assert user in default.members.all()

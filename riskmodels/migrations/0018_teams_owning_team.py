"""Every dataset and registered model belongs to a team.

Rows that exist before teams go to a team named "default", and every existing user joins it,
so an upgrade changes nobody's view: compliance officers then split the work into real teams
in the admin (Team admin, or a user's teams) and move users out of "default".
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DEFAULT_TEAM = "default"


def put_existing_rows_in_the_default_team(apps, schema_editor):
    Team = apps.get_model("governance", "Team")
    Dataset = apps.get_model("riskmodels", "Dataset")
    RegisteredModel = apps.get_model("riskmodels", "RegisteredModel")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    if not Dataset.objects.exists() and not RegisteredModel.objects.exists():
        return
    team, _ = Team.objects.get_or_create(slug=DEFAULT_TEAM, defaults={"name": DEFAULT_TEAM})
    Dataset.objects.filter(team__isnull=True).update(team=team)
    RegisteredModel.objects.filter(team__isnull=True).update(team=team)
    team.members.add(*User.objects.all())


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0003_teams"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("riskmodels", "0017_documentation_pack"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="team",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="governance.team"),
        ),
        migrations.AddField(
            model_name="registeredmodel",
            name="team",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="governance.team"),
        ),
        migrations.RunPython(put_existing_rows_in_the_default_team, migrations.RunPython.noop),
    ]

"""The team of a dataset or model is required (a separate migration: PostgreSQL refuses to alter a
table with the previous migration's deferred foreign-key checks still pending)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("riskmodels", "0018_teams_owning_team"),
    ]

    operations = [
        migrations.AlterField(
            model_name="dataset",
            name="team",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="governance.team"),
        ),
        migrations.AlterField(
            model_name="registeredmodel",
            name="team",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="governance.team"),
        ),
    ]

"""Chunks belong to the job runner, not to explanations: ExplanationChunk becomes JobChunk."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("riskmodels", "0003_explanation_plots")]

    operations = [
        migrations.RemoveConstraint(model_name="explanationchunk", name="explanation_chunk_unique"),
        migrations.RemoveConstraint(model_name="explanationchunk", name="explanation_chunk_nonempty"),
        migrations.RenameModel(old_name="ExplanationChunk", new_name="JobChunk"),
        migrations.AddConstraint(
            model_name="jobchunk",
            constraint=models.UniqueConstraint(fields=("job", "index"), name="job_chunk_unique"),
        ),
        migrations.AddConstraint(
            model_name="jobchunk",
            constraint=models.CheckConstraint(condition=models.Q(stop__gt=models.F("start")), name="job_chunk_nonempty"),
        ),
    ]

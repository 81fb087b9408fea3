from django.urls import path

from riskmodels.apis import datasets, jobs, models

urlpatterns = [
    path("datasets/", datasets.DatasetsApi.as_view(), name="datasets"),
    path("dataset-versions/", datasets.DatasetVersionListApi.as_view(), name="dataset-version-list"),
    path("dataset-versions/<int:id>/", datasets.DatasetVersionDetailApi.as_view(), name="dataset-version-detail"),
    path("dataset-versions/<int:id>/download/", datasets.DatasetVersionDownloadApi.as_view(),
         name="dataset-version-download"),
    path("algorithms/", models.AlgorithmListApi.as_view(), name="algorithm-list"),
    path("models/", models.RegisteredModelsApi.as_view(), name="registered-models"),
    path("models/<str:name>/", models.RegisteredModelDetailApi.as_view(), name="registered-model-detail"),
    path("training-jobs/", jobs.TrainingJobCreateApi.as_view(), name="training-job-create"),
    path("jobs/", jobs.JobListApi.as_view(), name="job-list"),
    path("jobs/<int:id>/", jobs.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:id>/cancel/", jobs.JobCancelApi.as_view(), name="job-cancel"),
    path("model-versions/", models.ModelVersionListApi.as_view(), name="model-version-list"),
    path("model-versions/compare/", models.ModelVersionCompareApi.as_view(), name="model-version-compare"),
    path("model-versions/<int:id>/", models.ModelVersionDetailApi.as_view(), name="model-version-detail"),
    path("model-versions/<int:id>/artifact/", models.ModelVersionArtifactApi.as_view(), name="model-version-artifact"),
    path("model-versions/<int:id>/evaluations/", models.EvaluationCreateApi.as_view(), name="evaluation-create"),
    path("model-versions/<int:id>/reproduce/", models.ReproductionCreateApi.as_view(), name="reproduction-create"),
    path("evaluations/<int:id>/", models.EvaluationDetailApi.as_view(), name="evaluation-detail"),
    path("evaluations/<int:id>/plots/<str:plot>.png", models.EvaluationPlotApi.as_view(), name="evaluation-plot"),
]

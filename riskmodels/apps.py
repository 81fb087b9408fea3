from django.apps import AppConfig


class RiskModelsConfig(AppConfig):
    name = "riskmodels"
    verbose_name = "Risk models"

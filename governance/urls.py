"""Top-level URLs: the admin, the versioned REST API, its schema and docs."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from governance.api import audit, auth, index

admin.site.site_header = "Credit-risk model governance"
admin.site.site_title = "Model governance"
admin.site.index_title = "Inventory, review and audit"

api_v1 = [
    path("", index.ApiIndexApi.as_view(), name="api-index"),
    path("auth/login/", auth.LoginApi.as_view(), name="auth-login"),
    path("auth/logout/", auth.LogoutApi.as_view(), name="auth-logout"),
    path("auth/logout-all/", auth.LogoutAllApi.as_view(), name="auth-logout-all"),
    path("me/", auth.WhoAmIApi.as_view(), name="whoami"),
    path("audit-events/", audit.AuditEventListApi.as_view(), name="audit-event-list"),
    path("audit-events/verify/", audit.AuditVerifyApi.as_view(), name="audit-verify"),
    path("audit-events/checkpoints/", audit.AuditCheckpointCreateApi.as_view(), name="audit-checkpoint-create"),
    path("", include("riskmodels.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The interactive docs are for signed-in people: send others to the admin sign-in first.
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema"), login_url="/admin/login/"),
         name="api-docs"),
    path("api/redoc/", login_required(SpectacularRedocView.as_view(url_name="schema"), login_url="/admin/login/"),
         name="api-redoc"),
]

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("ops/", include("threads.ops.urls")),
    path("api/v1/", include("threads.api.urls")),
    path("api/v1/", include("threads.webhooks.urls")),
    path("", include("threads.compat.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler400 = "threads.api.exceptions.handler400"
handler403 = "threads.api.exceptions.handler403"
handler404 = "threads.api.exceptions.handler404"
handler500 = "threads.api.exceptions.handler500"

from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "ops"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="ops:thread-list", query_string=True)),
    path("threads/", views.thread_list, name="thread-list"),
    path("threads/<str:thread_id>/", views.thread_detail, name="thread-detail"),
    path(
        "threads/<str:thread_id>/messages/<str:message_id>/delete/",
        views.message_delete,
        name="message-delete",
    ),
]

"""The seed-compatible surfaces (API.md §4), each at its own product's path.

None of these paths overlaps ``/api/v1/threads/…`` (``/api/v1/chat/threads/…`` is matched from
its own prefix), and Langbase's ``/v1/threads/{id}`` sits beside seed 001's
``/v1/threads/{id}/metadata`` because a path segment never matches ``/``.
"""

from django.urls import path

from . import feather

urlpatterns = [
    path(
        "api/v1/chat/threads/<str:thread_id>", feather.ChatThreadSessionView.as_view(),
        name="feather-thread",
    ),
]

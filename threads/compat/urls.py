"""The seed-compatible surfaces (docs/api.md), each at its own product's path.

None of these paths overlaps ``/api/v1/threads/…`` (``/api/v1/chat/threads/…`` is matched from
its own prefix), and Langbase's ``/v1/threads/{id}`` sits beside seed 001's
``/v1/threads/{id}/metadata`` because a path segment never matches ``/``.
"""

from django.urls import path

from . import chatthread, feather, freddy, langbase

urlpatterns = [
    path(
        "api/v1/chat/threads/<str:thread_id>",
        feather.ChatThreadSessionView.as_view(),
        name="feather-thread",
    ),
    path(
        "v1/threads/<str:thread_id>/metadata",
        freddy.ThreadMetadataView.as_view(),
        name="freddy-thread-metadata",
    ),
    path(
        "api/chat/threads/<str:thread_id>",
        chatthread.ChatThreadView.as_view(),
        name="chatthread-thread",
    ),
    path("v1/threads", langbase.ThreadsView.as_view(), name="langbase-threads"),
    path("v1/threads/<str:thread_id>", langbase.ThreadView.as_view(), name="langbase-thread"),
    path(
        "v1/threads/<str:thread_id>/messages",
        langbase.MessagesView.as_view(),
        name="langbase-messages",
    ),
]

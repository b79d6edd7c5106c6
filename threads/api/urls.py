from django.urls import path

from . import views
from .throttling import LoginThrottle

auth = {"authentication_classes": [], "permission_classes": [], "throttle_classes": [LoginThrottle]}

urlpatterns = [
    path("auth/token", views.AuthTokenView.as_view(**auth), name="token"),
    path("auth/token/refresh", views.AuthTokenRefreshView.as_view(**auth), name="token-refresh"),
    path("threads", views.ThreadListView.as_view(), name="thread-list"),
    path("threads/<str:thread_id>", views.ThreadDetailView.as_view(), name="thread-detail"),
    path("threads/<str:thread_id>/messages", views.MessageListView.as_view(), name="thread-messages"),
    path(
        "threads/<str:thread_id>/messages/<str:message_id>",
        views.MessageDetailView.as_view(),
        name="thread-message",
    ),
    path("threads/<str:thread_id>/history", views.HistoryView.as_view(), name="thread-history"),
    path("events", views.EventFeedView.as_view(), name="event-feed"),
    path("threads/<str:thread_id>/chat-token", views.ChatTokenView.as_view(), name="thread-chat-token"),
]

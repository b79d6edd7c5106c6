"""The seed-compatible surfaces (docs/api.md), each at its own product's path.

None of these paths overlaps ``/api/v1/threads/…`` (``/api/v1/chat/threads/…`` is matched from
its own prefix), and Langbase's ``/v1/threads/{id}`` sits beside seed 001's
``/v1/threads/{id}/metadata`` because a path segment never matches ``/``.
"""

from django.urls import path

from . import chatthread, feather, freddy, langbase, langgraph_threads, openai_conversations

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
    path("v1/conversations", openai_conversations.ConversationsView.as_view(), name="openai-conversations"),
    path(
        "v1/conversations/<str:conversation_id>",
        openai_conversations.ConversationView.as_view(),
        name="openai-conversation",
    ),
    path(
        "v1/conversations/<str:conversation_id>/items",
        openai_conversations.ItemsView.as_view(),
        name="openai-conversation-items",
    ),
    path(
        "v1/conversations/<str:conversation_id>/items/<str:item_id>",
        openai_conversations.ItemView.as_view(),
        name="openai-conversation-item",
    ),
    # LangGraph's own order: /threads/search and /threads/count before /threads/{thread_id}.
    path("langgraph/threads", langgraph_threads.ThreadsView.as_view(), name="langgraph-threads"),
    path("langgraph/threads/search", langgraph_threads.SearchView.as_view(), name="langgraph-threads-search"),
    path("langgraph/threads/count", langgraph_threads.CountView.as_view(), name="langgraph-threads-count"),
    path("langgraph/threads/<str:thread_id>", langgraph_threads.ThreadView.as_view(), name="langgraph-thread"),
    path(
        "langgraph/threads/<str:thread_id>/copy",
        langgraph_threads.CopyView.as_view(),
        name="langgraph-thread-copy",
    ),
]

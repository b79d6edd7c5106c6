"""The canonical REST API (docs/api.md): thin doors over ``threads.services``."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.db.models import TextField
from django.db.models.expressions import RawSQL
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from threads_project.routers import replica_reads

from .. import feed, selectors, services
from ..errors import ThreadError, invalid
from ..filters import ORDERING_CHOICES, ThreadFilter, ordering_fields
from ..merge import format_datetime, parse_uuid
from ..models import Event
from .pagination import KeysetPagination, parse_limit
from .serializers import (
    THREAD_JSON_SQL,
    ChatTokenRequest,
    ChatTokenResponse,
    ErrorResponse,
    EventSerializer,
    FeedPage,
    MessageCreateRequest,
    MessageSerializer,
    ThreadCreateRequest,
    ThreadPatchRequest,
    ThreadSerializer,
    json_text,
    page_of,
)
from .tokens import CHAT_TTL_DEFAULT, CHAT_TTL_MAX, CHAT_TTL_MIN, ChatToken

THREAD_JSON = RawSQL(THREAD_JSON_SQL, (), output_field=TextField())
CHAT_WRITABLE = frozenset({"metadata", "variables"})
# Every status an authenticated route can answer besides its success (503: the database is away).
ERRORS = {code: ErrorResponse for code in (400, 401, 403, 404, 411, 412, 413, 415, 422, 429, 503)}
AUTH_ERRORS = {code: ErrorResponse for code in (400, 401, 411, 413, 415, 429, 503)}
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description='Write only if the stored version matches, e.g. `"3"`; else 412.',
)

LIST_PARAMETERS = [
    OpenApiParameter("tag", str, many=True, description="Repeatable; every tag must match."),
    *[
        OpenApiParameter(name, str, enum=["true", "false", "any"])
        for name in ("isArchived", "visibleInUi", "isActive", "isPinned")
    ],
    *[OpenApiParameter(name, str) for name in ("projectId", "assistantId", "userId")],
    OpenApiParameter("search", str, description="Title contains (case-insensitive)."),
    *[OpenApiParameter(name, datetime) for name in ("createdAfter", "createdBefore", "updatedAfter")],
    OpenApiParameter("ordering", str, enum=[value for value, _ in ORDERING_CHOICES]),
    OpenApiParameter("limit", int, description="Page size, default 20, at most 100."),
    OpenApiParameter("cursor", str, description="From a `next` or `previous` link."),
    OpenApiParameter("metadata.{key}", str, description="Exact match on one metadata key (repeatable, any key)."),
]


def if_match(request) -> int | None:
    """The version of an ``If-Match: "<version>"`` header; ``*`` or no header means any."""
    return parse_if_match(request.META.get("HTTP_IF_MATCH"))


def parse_if_match(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    try:
        return int(value)
    except ValueError:
        raise ThreadError("version_mismatch", "If-Match must be a quoted version number.", "If-Match") from None


def thread_response(thread, status: int = 200, **headers) -> Response:
    return Response(ThreadSerializer(thread).data, status=status, headers={"ETag": f'"{thread.version}"', **headers})


def paginated(request, queryset, serializer_class, ordering) -> Response:
    paginator = KeysetPagination(ordering)
    rows = paginator.paginate(queryset, request)
    return paginator.response(serializer_class(rows, many=True).data)


class ThreadListView(APIView):
    @extend_schema(
        operation_id="threads_list",
        summary="List threads, filtered and paginated",
        parameters=LIST_PARAMETERS,
        responses={200: page_of(ThreadSerializer), **ERRORS},
    )
    @replica_reads
    def get(self, request):
        org = request.user.organization
        filterset = ThreadFilter(request.query_params, queryset=selectors.thread_qs(org))
        if not filterset.is_valid():
            field, messages = next(iter(filterset.errors.items()))
            raise invalid(
                f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages),
                None if field == "__all__" else field,
            )
        ordering = ordering_fields(filterset.ordering_value)
        if connection.vendor != "postgresql":
            return paginated(request, filterset.qs, ThreadSerializer, ordering)
        # PostgreSQL renders the rows (THREAD_JSON_SQL); the page only joins them.
        paginator = KeysetPagination(ordering)
        with selectors.unprepared():
            rows = paginator.paginate(filterset.qs, request, values={"json": THREAD_JSON})
        return paginator.json_response([row["json"] for row in rows])

    @extend_schema(
        operation_id="threads_create",
        summary="Create a thread",
        request=ThreadCreateRequest,
        responses={201: ThreadSerializer, 409: ErrorResponse, **ERRORS},
    )
    def post(self, request):
        thread = services.thread_create(org=request.user.organization, data=request.data, actor=request.user.actor)
        return thread_response(thread, 201, Location=f"/api/v1/threads/{thread.pk}")


# The canonical thread as a PATCH answers it: rendered by PostgreSQL in the PATCH's statement
# (THREAD_JSON_SQL, as the list's rows), by the serializer elsewhere.
RENDERER = JSONRenderer()
THREAD_RENDERING = services.Rendering(
    THREAD_JSON_SQL, lambda thread: RENDERER.render(ThreadSerializer(thread).data).decode()
)


def patch_thread(principal, thread_id, data, if_match_header: str | None) -> HttpResponse:
    """The canonical merge PATCH for ``principal`` (a chat token: metadata and variables only) and
    its answer, as both doors of the route run it (the DRF view and threads/api/lane.py)."""
    fields = None
    if principal.is_chat_token:
        if not isinstance(data, dict) or set(data) - CHAT_WRITABLE:
            raise ThreadError("permission_denied", "A chat token may change only metadata and variables.")
        fields = CHAT_WRITABLE
    version, body = services.thread_update_rendered(
        org=principal.organization,
        thread_id=thread_id,
        patch=data,
        actor=principal.actor,
        if_match=parse_if_match(if_match_header),
        fields=fields,
        rendering=THREAD_RENDERING,
    )
    response = HttpResponse(json_text(body), content_type="application/json")
    response["ETag"] = f'"{version}"'
    return response


class ThreadDetailView(APIView):
    chat_token_methods = ("GET", "PATCH")

    @extend_schema(operation_id="threads_retrieve", summary="Get a thread", responses={200: ThreadSerializer, **ERRORS})
    def get(self, request, thread_id):
        return thread_response(selectors.thread_get(request.user.organization, thread_id))

    @extend_schema(
        operation_id="threads_update",
        summary="Merge-patch a thread",
        request=ThreadPatchRequest,
        parameters=[IF_MATCH],
        responses={200: ThreadSerializer, **ERRORS},
    )
    def patch(self, request, thread_id):
        return patch_thread(request.user, thread_id, request.data, request.META.get("HTTP_IF_MATCH"))

    @extend_schema(
        operation_id="threads_delete",
        summary="Delete a thread",
        parameters=[IF_MATCH],
        responses={204: None, **ERRORS},
    )
    def delete(self, request, thread_id):
        services.thread_delete(
            org=request.user.organization,
            thread_id=thread_id,
            actor=request.user.actor,
            if_match=if_match(request),
        )
        return Response(status=204)


class MessageListView(APIView):
    chat_token_methods = ("GET", "POST")

    @extend_schema(
        operation_id="messages_list",
        summary="List a thread's messages, oldest first",
        responses={200: page_of(MessageSerializer), **ERRORS},
    )
    def get(self, request, thread_id):
        messages = selectors.thread_messages(request.user.organization, thread_id)
        return paginated(request, messages, MessageSerializer, [("created_at", False), ("id", False)])

    @extend_schema(
        operation_id="messages_create",
        summary="Add a message",
        request=MessageCreateRequest,
        responses={201: MessageSerializer, **ERRORS},
    )
    def post(self, request, thread_id):
        message = services.message_add(
            org=request.user.organization,
            thread_id=thread_id,
            data=request.data,
            actor=request.user.actor,
        )
        return Response(MessageSerializer(message).data, status=201)


class MessageDetailView(APIView):
    @extend_schema(
        operation_id="messages_delete",
        summary="Delete a message",
        parameters=[IF_MATCH],
        description="The thread's `messageCount` goes one down and its version one up (the new "
        "version is the answer's `ETag`); the history records a `message_deleted` event.",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, thread_id, message_id):
        thread = services.message_delete(
            org=request.user.organization,
            thread_id=thread_id,
            message_id=message_id,
            actor=request.user.actor,
            if_match=if_match(request),
        )
        return Response(status=204, headers={"ETag": f'"{thread.version}"'})


class HistoryView(APIView):
    @extend_schema(
        operation_id="history_list",
        summary="List a thread's change events, newest first",
        responses={200: page_of(EventSerializer), **ERRORS},
    )
    @replica_reads
    def get(self, request, thread_id):
        events = selectors.thread_events(request.user.organization, thread_id)
        return paginated(request, events, EventSerializer, [("id", True), ("id", True)])


FEED_LIMIT_DEFAULT, FEED_LIMIT_MAX = 100, 1000
FEED_PARAMETERS = [
    OpenApiParameter("after", str, description="A `nextCursor` from an earlier answer; absent = from the first event."),
    OpenApiParameter("limit", int, description=f"Page size, default {FEED_LIMIT_DEFAULT}, at most {FEED_LIMIT_MAX}."),
    OpenApiParameter("threadId", str, description="Only this thread's events."),
    OpenApiParameter("action", str, many=True, enum=Event.Action.values, description="Repeatable."),
]


class EventFeedView(APIView):
    @extend_schema(
        operation_id="events_list",
        summary="Read the organization's change events, oldest first",
        parameters=FEED_PARAMETERS,
        responses={200: FeedPage, **ERRORS},
    )
    def get(self, request):
        params = request.query_params
        after = feed.decode(params["after"]) if params.get("after") else None
        limit = parse_limit(params.get("limit"), FEED_LIMIT_DEFAULT, FEED_LIMIT_MAX)
        thread_id = parse_uuid(params["threadId"], "threadId") if params.get("threadId") else None
        actions = params.getlist("action")
        if unknown := set(actions) - set(Event.Action.values):
            raise invalid(f"Unknown action {sorted(unknown)[0]!r}: one of {', '.join(Event.Action.values)}.", "action")
        events, position, has_more = feed.read(
            request.user.organization.pk, after, limit, thread_id=thread_id, actions=actions
        )
        return Response(
            {
                "results": [feed.event_json(event) for event in events],
                "nextCursor": feed.encode(position),
                "hasMore": has_more,
            }
        )


class ChatTokenView(APIView):
    @extend_schema(
        operation_id="chat_token_create",
        summary="Issue a chat token for a thread",
        request=ChatTokenRequest,
        responses={200: ChatTokenResponse, **ERRORS},
    )
    def post(self, request, thread_id):
        body = request.data if isinstance(request.data, dict) else None
        if body is None or set(body) - {"ttlSeconds"}:
            raise invalid("The body may hold only 'ttlSeconds'.", "ttlSeconds")
        ttl = body.get("ttlSeconds", CHAT_TTL_DEFAULT)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not CHAT_TTL_MIN <= ttl <= CHAT_TTL_MAX:
            raise invalid(f"'ttlSeconds' must be a whole number from {CHAT_TTL_MIN} to {CHAT_TTL_MAX}.", "ttlSeconds")
        thread = selectors.thread_get(request.user.organization, thread_id)
        token = ChatToken.for_thread(thread, ttl)
        expires = datetime.fromtimestamp(token["exp"], tz=UTC)
        return Response(
            {
                "token": str(token),
                "threadId": str(thread.pk),
                "expiresAt": format_datetime(expires),
            }
        )


# simplejwt's views, with every status they can answer documented (their docstrings stay the
# operations' descriptions).
@extend_schema_view(
    post=extend_schema(
        summary="Exchange a username and password for tokens",
        responses={200: TokenObtainPairSerializer, **AUTH_ERRORS},
    )
)
class AuthTokenView(TokenObtainPairView):
    pass


@extend_schema_view(
    post=extend_schema(
        summary="Exchange a refresh token for a new access token",
        responses={200: TokenRefreshSerializer, **AUTH_ERRORS},
    )
)
class AuthTokenRefreshView(TokenRefreshView):
    pass

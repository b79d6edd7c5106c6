"""LangGraph's threads API at ``/langgraph/threads…``, as ``langgraph-sdk`` calls it (base URL
``http://HOST/langgraph``): create, get, update, search, count, copy and delete.

A LangGraph thread is a thread of this service under its own UUID. Update is the canonical merge
of ``metadata`` (``null`` removes a key); values the canonical rules refuse (numbers, objects)
are a 422 naming the key, never coerced. Every thread is ``idle`` with ``values: null``: this
service runs no graphs, so runs, state and history are not served. Errors are ``{"detail": …}``
with LangGraph's statuses (422 for a body it cannot take). docs/api.md lists every deviation.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from threads_project.routers import replica_reads

from .. import selectors, services
from ..api.authentication import ApiKeyHeaderAuthentication
from ..errors import ThreadError
from ..filters import ThreadFilter
from .base import CompatView

STATUSES = ("idle", "busy", "interrupted", "error")
FIELDS = (
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
)
# sort_by -> the column it orders by (every thread is idle: by status is by creation, ties by id).
SORTS = {
    "thread_id": "id",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "state_updated_at": "updated_at",
    "status": "created_at",
}
LIMIT_DEFAULT, LIMIT_MAX = 10, 1000
WRITABLE = frozenset({"metadata"})


class Invalid(ThreadError):
    """LangGraph's 422: a body this surface cannot take."""

    def __init__(self, detail: str) -> None:
        super().__init__("invalid_parameters", detail)
        self.status_code = 422


def iso(value) -> str:
    return value.astimezone(UTC).isoformat()


def render(thread, select: list[str] | None = None) -> dict:
    out = {
        "thread_id": str(thread.pk),
        "created_at": iso(thread.created_at),
        "updated_at": iso(thread.updated_at),
        "state_updated_at": iso(thread.updated_at),
        "metadata": thread.metadata,
        "config": {},
        "status": "idle",
        "values": None,
        "interrupts": {},
    }
    return {name: out[name] for name in select} if select else out


def check_body(body: Any, allowed: set[str], unsupported: tuple[str, ...] = ()) -> dict[str, Any]:
    if body is None or body == {} or (hasattr(body, "dict") and not body):
        return {}
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed - set(unsupported))
    if unknown:
        raise Invalid(f"Unknown field '{unknown[0]}'.")
    for name in unsupported:
        if body.get(name) is not None:
            raise Invalid(f"'{name}' is not supported by this service.")
    return body


def check_metadata(value: Any, *, filter_: bool = False) -> dict[str, Any]:
    """Metadata as the canonical rules take it: each value a string or a list of strings (``null``
    removes a key). LangGraph stores any JSON value; this service refuses what it cannot store."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("'metadata' must be an object.")
    for key, item in value.items():
        if filter_ and not isinstance(item, str):
            raise Invalid(f"metadata.{key}: a metadata filter value must be a string.")
        if item is None or isinstance(item, str):
            continue
        if not (isinstance(item, list) and all(isinstance(text, str) for text in item)):
            raise Invalid(
                f"metadata.{key}: a metadata value must be a string or a list of strings (or null to "
                f"remove the key); this service does not store numbers, booleans or objects."
            )
    return value


def thread_uuid(thread_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(thread_id)
    except ValueError:
        raise Invalid("Invalid thread ID: must be a UUID") from None


def whole_number(body: dict, name: str, default: int, low: int, high: int | None = None) -> int:
    value = body.get(name, default)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise Invalid(f"'{name}' must be a whole number {bound}.")
    return value


def filtered(org, body: dict):
    """The organization's threads matching a search or count body: metadata by containment
    (``ThreadFilter``'s ``metadata.<key>``), ``status`` and ``values`` (every thread is idle with
    no values), and for search ``ids``."""
    metadata = check_metadata(body.get("metadata"), filter_=True)
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise Invalid(f"'status' must be one of {', '.join(STATUSES)}.")
    values = body.get("values")
    if values is not None and not isinstance(values, dict):
        raise Invalid("'values' must be an object.")
    query = QueryDict(mutable=True)
    for key, value in metadata.items():
        query.appendlist(f"metadata.{key}", value)
    threads = ThreadFilter(query, queryset=selectors.thread_qs(org))
    if not threads.is_valid():
        raise Invalid(" ".join(message for messages in threads.errors.values() for message in messages))
    qs = threads.qs
    if (status is not None and status != "idle") or values:
        return qs.none()
    ids = body.get("ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise Invalid("'ids' must be a list of thread ids.")
        qs = qs.filter(pk__in=[thread_uuid(i) for i in ids])
    return qs


THREAD = {
    "type": "object",
    "properties": {
        "thread_id": {"type": "string", "format": "uuid"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "state_updated_at": {"type": "string", "format": "date-time"},
        "metadata": {"type": "object"},
        "config": {"type": "object"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "values": {"type": "object", "nullable": True},
        "interrupts": {"type": "object"},
    },
    "required": ["thread_id", "created_at", "updated_at", "metadata", "status"],
}
METADATA = {
    "type": "object",
    "additionalProperties": {
        "nullable": True,
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
}
FILTERS = {
    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    "values": {"type": "object"},
    "status": {"type": "string", "enum": list(STATUSES)},
}
DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
ERRORS = {status: DETAIL for status in (401, 403, 404, 411, 413, 415, 422, 429, 503)}
PATH_ID = [OpenApiParameter("thread_id", str, OpenApiParameter.PATH, required=True)]


class LangGraphView(CompatView):
    authentication_classes = [ApiKeyHeaderAuthentication]

    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        status = getattr(error, "status_code", None) or (422 if error.status in (400, 422) else error.status)
        thread_id = (self.kwargs or {}).get("thread_id") or getattr(error, "thread_id", "")
        if status == 404 and error.code == "thread_not_found":
            detail = f"Thread with ID {thread_id} not found"
        elif status == 409:
            detail = f"Thread with ID {thread_id} already exists"
        elif status >= 500:
            detail = "Internal Server Error" if status == 500 else error.message
        elif error.param and not isinstance(error, Invalid):
            detail = f"{error.param}: {error.message}"
        elif error.code == "invalid_json":
            detail = "Invalid JSON in request body"
        else:
            detail = error.message
        return Response({"detail": detail}, status=status)


class ThreadsView(LangGraphView):
    @extend_schema(
        operation_id="langgraph_threads_create",
        summary="Create a thread",
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "thread_id": {"type": "string", "format": "uuid"},
                    "metadata": METADATA,
                    "if_exists": {"type": "string", "enum": ["raise", "do_nothing"]},
                },
            }
        },
        responses={200: THREAD, 409: DETAIL, **ERRORS},
    )
    def post(self, request):
        body = check_body(request.data, {"thread_id", "metadata", "if_exists"}, ("ttl", "supersteps"))
        if_exists = body.get("if_exists") or "raise"
        if if_exists not in ("raise", "do_nothing"):
            raise Invalid("'if_exists' must be 'raise' or 'do_nothing'.")
        data = {"metadata": check_metadata(body.get("metadata"))}
        if body.get("thread_id") is not None:
            if not isinstance(body["thread_id"], str):
                raise Invalid("Invalid thread ID: must be a UUID")
            data["id"] = str(thread_uuid(body["thread_id"]))
        org = request.user.organization
        try:
            thread = services.thread_create(org=org, data=data, actor=request.user.actor)
        except ThreadError as error:
            if error.code != "thread_exists":
                raise
            error.thread_id = data["id"]
            if if_exists == "raise":
                raise
            try:  # only this organization's live thread: another's (or a deleted one) stays a 409
                thread = selectors.thread_get(org, data["id"])
            except ThreadError:
                raise error from None
        return Response(render(thread))


class SearchView(LangGraphView):
    reads_only = True

    @extend_schema(
        operation_id="langgraph_threads_search",
        summary="Search threads",
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    **FILTERS,
                    "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                    "limit": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
                    "offset": {"type": "integer", "minimum": 0, "default": 0},
                    "sort_by": {"type": "string", "enum": list(SORTS)},
                    "sort_order": {"type": "string", "enum": ["asc", "desc"]},
                    "select": {"type": "array", "items": {"type": "string", "enum": list(FIELDS)}},
                },
            }
        },
        responses={200: {"type": "array", "items": {**THREAD, "required": []}}, **ERRORS},
    )
    @replica_reads
    def post(self, request):
        body = check_body(
            request.data, {*FILTERS, "ids", "limit", "offset", "sort_by", "sort_order", "select"}, ("extract",)
        )
        limit = whole_number(body, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
        offset = whole_number(body, "offset", 0, 0)
        sort_by, order = body.get("sort_by") or "created_at", body.get("sort_order") or "desc"
        if not isinstance(sort_by, str) or sort_by not in SORTS or order not in ("asc", "desc"):
            raise Invalid(f"'sort_by' must be one of {', '.join(SORTS)}; 'sort_order' 'asc' or 'desc'.")
        select = body.get("select") or None
        if select is not None and (not isinstance(select, list) or any(name not in FIELDS for name in select)):
            raise Invalid(f"'select' must be a list of: {', '.join(FIELDS)}.")
        sign = "-" if order == "desc" else ""
        qs = filtered(request.user.organization, body).order_by(f"{sign}{SORTS[sort_by]}", f"{sign}id")
        rows = list(qs[offset : offset + limit + 1])
        more = len(rows) > limit
        headers = {"X-Pagination-Total": str(offset + min(len(rows), limit) + more)}
        if more:
            headers["X-Pagination-Next"] = str(offset + limit)
        return Response([render(thread, select) for thread in rows[:limit]], headers=headers)


class CountView(LangGraphView):
    reads_only = True

    @extend_schema(
        operation_id="langgraph_threads_count",
        summary="Count threads",
        request={"application/json": {"type": "object", "properties": FILTERS}},
        responses={200: {"type": "integer"}, **ERRORS},
    )
    @replica_reads
    def post(self, request):
        body = check_body(request.data, set(FILTERS))
        return Response(filtered(request.user.organization, body).count())


class ThreadView(LangGraphView):
    @extend_schema(
        operation_id="langgraph_threads_get",
        summary="Get a thread",
        parameters=[*PATH_ID, OpenApiParameter("include", str, description="Accepted; `ttl` is never set here.")],
        responses={200: THREAD, **ERRORS},
    )
    def get(self, request, thread_id):
        return Response(render(selectors.thread_get(request.user.organization, thread_uuid(thread_id))))

    @extend_schema(
        operation_id="langgraph_threads_update",
        summary="Merge a thread's metadata",
        description="`null` removes a key. With `Prefer: return=minimal` the answer is an empty 204.",
        parameters=[*PATH_ID, OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, enum=["return=minimal"])],
        request={"application/json": {"type": "object", "properties": {"metadata": METADATA}}},
        responses={200: THREAD, 204: None, **ERRORS},
    )
    def patch(self, request, thread_id):
        body = check_body(request.data, {"metadata"}, ("ttl",))
        patch = {"metadata": check_metadata(body["metadata"])} if body.get("metadata") is not None else {}
        thread = services.thread_update(
            org=request.user.organization,
            thread_id=thread_uuid(thread_id),
            patch=patch,
            actor=request.user.actor,
            fields=WRITABLE,
        )
        if request.headers.get("Prefer") == "return=minimal":
            return Response(status=204)
        return Response(render(thread))

    @extend_schema(
        operation_id="langgraph_threads_delete",
        summary="Delete a thread",
        parameters=PATH_ID,
        responses={204: None, **ERRORS},
    )
    def delete(self, request, thread_id):
        services.thread_delete(
            org=request.user.organization, thread_id=thread_uuid(thread_id), actor=request.user.actor
        )
        return Response(status=204)


class CopyView(LangGraphView):
    @extend_schema(
        operation_id="langgraph_threads_copy",
        summary="Copy a thread",
        description="A new thread with the same metadata, other fields and messages.",
        parameters=PATH_ID,
        request=None,
        responses={200: THREAD, **ERRORS},
    )
    def post(self, request, thread_id):
        thread = services.thread_copy(
            org=request.user.organization, thread_id=thread_uuid(thread_id), actor=request.user.actor
        )
        return Response(render(thread))

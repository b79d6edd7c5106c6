"""The one error envelope (docs/api.md, "Errors") for every error of the canonical API, DRF's own included."""

from __future__ import annotations

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response

from ..errors import POOLER_MISCONFIGURED, ThreadError, is_pooler_misconfiguration

logger = logging.getLogger("threads.api")


def _first_param(detail) -> tuple[str | None, str]:
    """The first field and message of a DRF ValidationError detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            param, message = _first_param(value)
            name = None if key in ("non_field_errors", "__all__") else key
            return (f"{name}.{param}" if name and param else name or param), message
    if isinstance(detail, list) and detail:
        return _first_param(detail[0])
    return None, str(detail)


def to_thread_error(exc: Exception) -> ThreadError:
    """Any exception as a domain error; unknown ones become a bare 500."""
    if isinstance(exc, ThreadError):
        return exc
    if isinstance(exc, Http404 | exceptions.NotFound):
        return ThreadError("not_found", "Not found.")
    if isinstance(exc, exceptions.ParseError):
        return ThreadError("invalid_json", f"The body is not valid JSON: {exc.detail}")
    if isinstance(exc, exceptions.NotAuthenticated):  # DRF's own detail, or a door's own words
        return ThreadError("authentication_required", str(exc.detail))
    if isinstance(exc, exceptions.AuthenticationFailed):
        detail = exc.detail.get("detail", exc.detail) if isinstance(exc.detail, dict) else exc.detail
        return ThreadError("invalid_token", str(detail))
    if isinstance(exc, exceptions.PermissionDenied | DjangoPermissionDenied):
        message = str(getattr(exc, "detail", "")) or "You do not have permission to do this."
        return ThreadError("permission_denied", message)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return ThreadError("method_not_allowed", str(exc.detail))
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return ThreadError("unsupported_media_type", "The body must be application/json.")
    if isinstance(exc, exceptions.Throttled):
        return ThreadError("rate_limited", "Too many requests; retry later.")
    if isinstance(exc, RequestDataTooBig):
        return ThreadError("payload_too_large", "The request body is too large.")
    if isinstance(exc, SuspiciousOperation):  # e.g. TooManyFieldsSent: over 1,000 query parameters
        return ThreadError("invalid_parameters", f"The request was refused: {exc}")
    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_param(exc.detail)
        return ThreadError("invalid_parameters", message, param)
    if isinstance(exc, DatabaseError) and is_pooler_misconfiguration(exc):
        sqlstate = getattr(exc.__cause__, "sqlstate", None) or "?"
        logger.error(
            "prepared statement error (SQLSTATE %s): the database is behind a transaction-mode pooler; "
            "set DATABASE_POOLER=transaction (docs/deploy.md)",
            sqlstate,
        )
        return ThreadError("database_misconfigured", POOLER_MISCONFIGURED)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("database unavailable: %s", exc.__class__.__name__)
        return ThreadError("service_unavailable", "The database is unavailable; retry shortly.")
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
        return ThreadError("internal_error", "Internal server error.")
    logger.exception("unhandled error")
    return ThreadError("internal_error", "Internal server error.")


def exception_handler(exc, context):
    error = to_thread_error(exc)
    response = Response(error.envelope(), status=error.status)
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        response["Retry-After"] = str(int(exc.wait) + 1)
    return response


def _json_error(error: ThreadError) -> JsonResponse:
    return JsonResponse(error.envelope(), status=error.status)


def handler400(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return _json_error(ThreadError("payload_too_large", "The request body is too large."))
    return _json_error(ThreadError("invalid_parameters", "Bad request."))


# The operator pages, their login and the admin answer people, in HTML.
HTML_PREFIXES = ("/ops/", "/accounts/", "/admin/")


def handler403(request, exception=None):
    if request.path.startswith(HTML_PREFIXES):
        return defaults.permission_denied(request, exception)
    return _json_error(ThreadError("permission_denied", "Forbidden."))


def handler404(request, exception=None):
    if request.path.startswith(HTML_PREFIXES):
        return defaults.page_not_found(request, exception)
    return _json_error(ThreadError("not_found", "Not found."))


def handler500(request):
    """An exception outside a view's exception handler (an operator page, the admin, a credential
    checked by the PATCH lane): a database that is away or a pooler the service was not told of
    answers 503 there too, anything else the bare 500."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DatabaseError) and is_pooler_misconfiguration(exc)
    ):
        return _json_error(to_thread_error(exc))
    return _json_error(ThreadError("internal_error", "Internal server error."))

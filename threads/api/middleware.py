from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from ..errors import ThreadError


class BodySizeLimitMiddleware:
    """Refuse a request body over ``MAX_BODY_BYTES`` before anything reads it (413), and a
    chunked body (411): Django reads only ``Content-Length`` bytes, so behind a WSGI server a chunked
    PATCH would be taken for an empty one and answered 200 without writing anything."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            error = ThreadError("length_required", "A request body must come with a Content-Length header.")
            return JsonResponse(error.envelope(), status=error.status)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_BODY_BYTES:
            error = ThreadError(
                "payload_too_large",
                f"The request body cannot exceed {settings.MAX_BODY_BYTES // 1024} KiB.",
            )
            return JsonResponse(error.envelope(), status=error.status)
        return self.get_response(request)


# Django's own error pages as the envelope: (code, message) by status.
PAGE_ERRORS = {
    400: ("invalid_parameters", "Bad request."),
    403: ("permission_denied", "Forbidden."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("payload_too_large", "The request body is too large."),
}


class ApiErrorsAsJsonMiddleware:
    """An HTML error page on an API path becomes the error envelope. In production the error
    handlers (``threads.api.exceptions``) answer JSON already; with ``DEBUG`` on (``make run``)
    Django answers an unknown URL, a bad Host header or an exception outside a view with its debug
    page, which lists every URL pattern and is no answer for a program. Pages for people (the
    operator pages, the admin, the login) keep it."""

    def __init__(self, get_response):
        self.get_response = get_response
        # Paths whose clients are programs: every API surface, the schema and its docs.
        self.prefixes = ("/api/", *settings.API_PATH_PREFIXES)

    def __call__(self, request):
        return self.process_response(request, self.get_response(request))

    def process_response(self, request, response):
        if (
            response.status_code >= 400
            and request.path_info.startswith(self.prefixes)
            and response.get("Content-Type", "").startswith("text/html")
        ):
            code, message = PAGE_ERRORS.get(response.status_code, ("internal_error", "Internal server error."))
            error = ThreadError(code, message)
            return JsonResponse(error.envelope(), status=error.status)
        return response

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

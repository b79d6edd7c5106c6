"""What the seed surfaces share: a view whose every error (DRF's own included) is rendered in the
surface's shape, and the small conversions their shapes need. No merge rule lives here."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rest_framework.response import Response
from rest_framework.views import APIView

from ..api.exceptions import to_thread_error
from ..errors import ThreadError, invalid


class CompatView(APIView):
    """An APIView that turns any exception into a ``ThreadError`` and lets the surface draw it.

    Subclasses implement ``error_response``; DRF's 401/403/404/405/415/parse errors come through
    here too, because DRF calls ``get_exception_handler()`` for every exception of the view.
    """

    def error_response(self, error: ThreadError, exc: Exception) -> Response:
        raise NotImplementedError

    def get_exception_handler(self):
        return self.handle_error

    def handle_error(self, exc: Exception, context) -> Response:
        response = self.error_response(to_thread_error(exc), exc)
        if getattr(exc, "auth_header", None) and response.status_code == 401:
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None and response.status_code == 429:
            response["Retry-After"] = str(int(exc.wait) + 1)
        return response


def unix(value: datetime) -> int:
    return int(value.timestamp())


def as_strings(values: dict[str, Any]) -> dict[str, str]:
    """A metadata map for a surface that types values as strings: a list becomes its JSON text."""
    return {
        key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in values.items()
    }


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def require_string_map(body: dict[str, Any], field: str) -> None:
    """For surfaces whose maps hold strings only: each value a string, or null to remove the key.

    The service checks everything else (keys, lengths, limits, NUL).
    """
    value = body.get(field)
    if isinstance(value, dict):
        for key, item in value.items():
            if item is not None and not isinstance(item, str):
                raise invalid(f"'{field}.{key}' must be a string or null.", f"{field}.{key}")

"""The canonical PATCH's common case in a lane beside Django's and DRF's dispatch: the same steps,
fewer layers.

The API handler (threads_project/wsgi.py) offers each API request to ``answer`` before its
middleware chain; the lane takes a PATCH of ``/api/v1/threads/{id}`` and runs the route's own
pieces in DRF's order — the view's authentication, permission, parser and throttle classes,
``views.patch_thread``, the one exception handler and ``JSONRenderer`` — without the URL
resolution, DRF's ``Request`` wrapper, negotiation and ``Response`` rendering (about a third of the
server's CPU per PATCH in profiles, more than the merge itself). It answers what the DRF view would
answer, header for header: tests/test_lane.py sends the same requests through both and compares.

It takes only what it can finish the way DRF would; everything else goes on to the chain and the
DRF view untouched: any other request, a body that is not plain JSON, a request that
authentication or the permissions refuse, a body that does not parse. Nothing has happened by then
(no throttle hit, no write), so DRF starts from the beginning and answers in full. Once the
throttle has counted the request, the lane answers itself: the throttle's 429, the service's errors
and the success. ``API_LANE = False`` (setting) sends every request to the chain.
"""

from __future__ import annotations

import functools
import io
from types import SimpleNamespace

from django.http import HttpResponse
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from .exceptions import exception_handler
from .views import ThreadDetailView, patch_thread

# The content types the lane parses: DRF would take JSON in any charset, the lane UTF-8 only.
JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
RENDERER = JSONRenderer()
PARSER_CONTEXT = {"encoding": "utf-8"}
# The DRF view's own classes (from the REST_FRAMEWORK setting): the lane runs the same ones.
AUTHENTICATORS = ThreadDetailView.authentication_classes
PERMISSIONS = ThreadDetailView.permission_classes
THROTTLES = ThreadDetailView.throttle_classes
PARSER = next(parser for parser in ThreadDetailView.parser_classes if parser.media_type == "application/json")


@functools.cache
def _route() -> tuple[str, dict[str, str]]:
    """The route's path before the thread id, and the headers DRF adds to each of its answers
    (``Allow``), read once the URLconf is loaded."""
    prefix = reverse("thread-detail", args=["-"])[:-1]
    view = ThreadDetailView()
    view.setup(None)  # as as_view() does for each request (HEAD answered by GET)
    return prefix, view.default_response_headers


def answer(request) -> HttpResponse | None:
    """The answer to the route's PATCH, or None for the chain and DRF to give it (nothing done)."""
    prefix, headers = _route()
    path = request.path_info
    if request.method != "PATCH" or not path.startswith(prefix):
        return None
    thread_id = path[len(prefix) :]
    if not thread_id or "/" in thread_id:  # the route's <str:thread_id>
        return None
    return patch(request, thread_id, headers)


def patch(request, thread_id: str, headers: dict[str, str]) -> HttpResponse | None:
    """The answer to a PATCH, or None for DRF to give it (nothing done yet)."""
    if request.META.get("CONTENT_TYPE", "").lower() not in JSON_TYPES or not request.META.get("CONTENT_LENGTH"):
        return None
    route = SimpleNamespace(kwargs={"thread_id": thread_id}, chat_token_methods=ThreadDetailView.chat_token_methods)
    try:
        found = next(filter(None, (authenticator().authenticate(request) for authenticator in AUTHENTICATORS)), None)
        if found is None:
            return None
        request.user = principal = found[0]
        if not all(permission().has_permission(request, route) for permission in PERMISSIONS):
            return None
        data = PARSER().parse(io.BytesIO(request.body), "application/json", PARSER_CONTEXT)
    except exceptions.APIException:
        return None
    except Exception as exc:  # the database away while the key is looked up: DRF's handler answers it
        return _rendered(exception_handler(exc, {"request": request}), headers)
    try:
        throttles = [cls() for cls in THROTTLES]
        waits = [throttle.wait() for throttle in throttles if not throttle.allow_request(request, route)]
        if waits:  # as DRF's check_throttles: the longest wait
            raise exceptions.Throttled(max((wait for wait in waits if wait is not None), default=None))
        response = patch_thread(principal, thread_id, data, request.META.get("HTTP_IF_MATCH"))
    except Exception as exc:  # the DRF view's exception handler, as DRF would call it
        return _rendered(exception_handler(exc, {"request": request}), headers)
    return _with(response, headers)


def _rendered(drf_response, headers: dict[str, str]) -> HttpResponse:
    response = HttpResponse(
        RENDERER.render(drf_response.data), status=drf_response.status_code, content_type="application/json"
    )
    for name, value in drf_response.items():
        if name != "Content-Type":
            response[name] = value
    return _with(response, headers)


def _with(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for name, value in headers.items():
        response[name] = value
    return response

"""The WSGI application: API requests take a short middleware chain, pages for people the full one.

An API request carries a bearer token and gets JSON: it needs no session, CSRF check, login,
messages, frame guard or static files, which cost a third of Django's share of a PATCH in
profiles. ``settings.API_PATH_PREFIXES`` says which paths are API paths, ``settings.API_MIDDLEWARE``
what they run; every other path (the admin, the operator pages, their login, the API docs page,
static files) runs ``settings.MIDDLEWARE``.

The canonical PATCH's common case goes further (threads/api/lane.py): when none of the API
middleware would act on the request before the view, the lane answers it without the chain and the
URL resolution, and the middleware's response hooks then run on its answer as they would have.

Every request, whichever way it went, ends in ``routers.after_request``: with read replicas, a
request with an unsafe method starts its caller's read-your-writes window (threads_project/routers.py).
"""

import os
import sys

import django
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.log import log_response

# The API chain the lane knows how to stand in for: what each would do before the view is checked
# (``_chain_passes``), and the response hooks run on the lane's answer.
LANE_CHAIN = [
    "threads.api.middleware.ApiErrorsAsJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "threads.api.middleware.BodySizeLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
]


class ApiHandler(WSGIHandler):
    def load_middleware(self, is_async=False):
        # Django builds a chain from settings.MIDDLEWARE only: lend it the API's list while it does.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full
        self.lane = None
        if settings.API_MIDDLEWARE == LANE_CHAIN:
            from threads.api import lane
            from threads.api.middleware import ApiErrorsAsJsonMiddleware

            self.lane = lane.answer
            self.response_hooks = [
                CommonMiddleware(self.get_response).process_response,
                SecurityMiddleware(self.get_response).process_response,
                ApiErrorsAsJsonMiddleware(self.get_response).process_response,
            ]

    def get_response(self, request):
        response = self._lane(request) if self.lane is not None and settings.API_LANE else None
        if response is None:
            response = super().get_response(request)
            routers.after_request(request)
            return response
        routers.after_request(request)  # the lane's PATCH, too, starts its caller's window
        for hook in self.response_hooks:  # the chain's answer hooks, innermost first
            response = hook(request, response)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response

    def _lane(self, request):
        if not _chain_passes(request):
            return None
        try:
            return self.lane(request)
        except Exception:  # as the chain turns an exception into its answer (handler500's, …)
            return response_for_exception(request, sys.exc_info()[1])


def _chain_passes(request) -> bool:
    """Whether every middleware of LANE_CHAIN would let the request through to the view unchanged:
    no HTTPS redirect, a body of an acceptable size with its length, no refused user agent, a valid
    host, no www redirect (the slash redirect never applies to the lane's path, which resolves)."""
    if settings.SECURE_SSL_REDIRECT and not request.is_secure():
        return False
    meta = request.META
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return False
    try:
        if int(meta.get("CONTENT_LENGTH") or 0) > settings.MAX_BODY_BYTES:
            return False
    except ValueError:
        return False
    if settings.DISALLOWED_USER_AGENTS and meta.get("HTTP_USER_AGENT") is not None:
        return False
    try:
        host = request.get_host()
    except DisallowedHost:
        return False
    return not (settings.PREPEND_WWW and host and not host.startswith("www."))


class DoorsHandler(WSGIHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.api = ApiHandler()
        self.api_prefixes = tuple(settings.API_PATH_PREFIXES)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(self.api_prefixes):
            return self.api(environ, start_response)
        return super().__call__(environ, start_response)

    def get_response(self, request):
        response = super().get_response(request)
        routers.after_request(request)  # an operator form, the admin, a seed surface: any door
        return response


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threads_project.settings")
django.setup(set_prefix=False)

from threads_project import routers  # noqa: E402  (needs the settings)

application = DoorsHandler()

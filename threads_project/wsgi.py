"""The WSGI application: API requests take a short middleware chain, pages for people the full one.

An API request carries a bearer token and gets JSON: it needs no session, CSRF check, login,
messages, frame guard or static files, which cost a third of Django's share of a PATCH in
profiles. ``settings.API_PATH_PREFIXES`` says which paths are API paths, ``settings.API_MIDDLEWARE``
what they run; every other path (the admin, the operator pages, their login, the API docs page,
static files) runs ``settings.MIDDLEWARE``.
"""

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler


class ApiHandler(WSGIHandler):
    def load_middleware(self, is_async=False):
        # Django builds a chain from settings.MIDDLEWARE only: lend it the API's list while it does.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class DoorsHandler(WSGIHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.api = ApiHandler()
        self.api_prefixes = tuple(settings.API_PATH_PREFIXES)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(self.api_prefixes):
            return self.api(environ, start_response)
        return super().__call__(environ, start_response)


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threads_project.settings")
django.setup(set_prefix=False)
application = DoorsHandler()

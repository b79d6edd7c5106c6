"""The chat token: a short-lived JWT of its own type, bound to one thread of one organization."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenBackendExpiredToken
from rest_framework_simplejwt.tokens import Token

CHAT_TTL_DEFAULT = 3600
CHAT_TTL_MIN = 60
CHAT_TTL_MAX = 86_400


class ChatToken(Token):
    token_type = "chat"
    lifetime = timedelta(seconds=CHAT_TTL_DEFAULT)

    @classmethod
    def for_thread(cls, thread, ttl_seconds: int = CHAT_TTL_DEFAULT) -> ChatToken:
        token = cls()
        token.set_exp(lifetime=timedelta(seconds=ttl_seconds))
        token["thread_id"] = str(thread.pk)
        token["org_id"] = str(thread.organization_id)
        return token


class RotatingTokenBackend(TokenBackend):
    """Signs with the current key; also accepts tokens signed with ``JWT_PREVIOUS_SIGNING_KEYS``,
    so that a key can be rotated without ending every session at once."""

    def decode(self, token, verify: bool = True):
        try:
            return super().decode(token, verify)
        except TokenBackendExpiredToken:
            raise
        except TokenBackendError:
            for key in settings.JWT_PREVIOUS_SIGNING_KEYS if verify else ():
                backend = TokenBackend(self.algorithm, key, leeway=self.leeway)
                try:
                    return backend.decode(token, verify)
                except TokenBackendExpiredToken:
                    raise
                except TokenBackendError:
                    continue
            raise


def install_rotating_backend() -> None:
    from rest_framework_simplejwt.settings import api_settings

    Token._token_backend = RotatingTokenBackend(
        api_settings.ALGORITHM,
        api_settings.SIGNING_KEY,
        api_settings.VERIFYING_KEY,
        api_settings.AUDIENCE,
        api_settings.ISSUER,
        api_settings.JWK_URL,
        api_settings.LEEWAY,
        api_settings.JSON_ENCODER,
    )

"""The chat token: a short-lived JWT of its own type, bound to one thread of one organization."""

from __future__ import annotations

from datetime import timedelta

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

"""Bearer authentication for the three kinds of caller: API keys, user JWTs and chat tokens.

Whoever authenticates becomes a ``Principal``: its organization, whether it may write, and the
actor that the history records.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

from ..keys import API_KEY_PREFIX, api_key_cache, hash_api_key
from ..models import ApiKey, Membership, Organization
from ..services import Actor
from .tokens import ChatToken

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class Principal:
    kind: str  # "user", "api_key" or "chat_token"
    organization: Organization | None
    can_write: bool
    actor: Actor
    user: object | None = None
    api_key: ApiKey | None = None
    thread_id: uuid.UUID | None = None  # chat tokens only

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> str:
        return f"{self.kind}:{self.actor.id}"

    @property
    def is_chat_token(self) -> bool:
        return self.kind == "chat_token"


def principal_for_user(user) -> Principal:
    membership = getattr(user, "membership", None)
    org = membership.organization if membership else None
    can_write = user.is_superuser or (membership is not None and membership.role == Membership.Role.MEMBER)
    return Principal("user", org, can_write, Actor.user(user), user=user)


class BearerAuthentication(JWTAuthentication):
    """``Authorization: Bearer tk_…`` (API key), or a JWT: access token (user) or chat token."""

    www_authenticate_realm = "api"

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None:
            return None
        text = raw.decode("latin-1")
        if text.startswith(API_KEY_PREFIX):
            return self._api_key(text)
        token = self.get_validated_token(raw)
        if token.get("token_type") == ChatToken.token_type:
            return self._chat(token), token
        return principal_for_user(self.get_user(token)), token

    def get_user(self, validated_token):
        try:
            user_id = validated_token["user_id"]
        except KeyError:
            raise InvalidToken("The token has no user.") from None
        user = get_user_model().objects.select_related("membership__organization").filter(pk=user_id).first()
        if user is None or not user.is_active:
            raise AuthenticationFailed("The user of this token is unknown or inactive.")
        return user

    def _api_key(self, raw: str):
        key = _lookup_api_key(hash_api_key(raw))
        if key is None:
            raise AuthenticationFailed("Invalid API key.", code="invalid_token")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now  # the cached copy too: at most one such write a minute per process
        principal = Principal(
            "api_key",
            key.organization,
            key.scope == ApiKey.Scope.WRITE,
            Actor.api_key(key),
            api_key=key,
        )
        return principal, key

    def _chat(self, token) -> Principal:
        try:
            thread_id = uuid.UUID(token["thread_id"])
            org = Organization(pk=uuid.UUID(token["org_id"]))
        except (KeyError, ValueError):
            raise InvalidToken("The chat token is malformed.") from None
        return Principal("chat_token", org, True, Actor.chat_token(thread_id), thread_id=thread_id)


class ApiKeyHeaderAuthentication(BearerAuthentication):
    """``Authorization: Bearer …`` as everywhere, or the credential alone in ``X-Api-Key``: the
    header LangGraph's SDK sends its key in. ``Authorization`` wins when both are sent."""

    def get_header(self, request):
        header = super().get_header(request)
        key = request.META.get("HTTP_X_API_KEY")
        if header is None and key:
            return f"Bearer {key}".encode(HTTP_HEADER_ENCODING, errors="replace")
        return header


def _lookup_api_key(key_hash: str) -> ApiKey | None:
    """The live key with this hash, from this process's cache for ``API_KEY_CACHE_SECONDS``.

    The cache saves a query on every request. The price is the window: a key revoked or deleted
    elsewhere (another worker, another server) still works here for at most that many seconds;
    ``api_key_revoke`` forgets it at once in its own process. Unknown and revoked keys are not
    cached, so a new key works at once.
    """
    ttl = settings.API_KEY_CACHE_SECONDS
    cached = api_key_cache.get(key_hash)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    key = ApiKey.objects.select_related("organization").filter(key_hash=key_hash).first()
    # The lookup is by hash; comparing again in constant time costs nothing and guards the index.
    if key is None or not hmac.compare_digest(key.key_hash, key_hash) or key.is_revoked:
        api_key_cache.pop(key_hash, None)
        return None
    if ttl > 0:
        if len(api_key_cache) >= API_KEY_CACHE_MAX:
            api_key_cache.clear()  # bounded: many distinct keys in a few seconds is rare
        api_key_cache[key_hash] = (time.monotonic() + ttl, key)
    return key


API_KEY_CACHE_MAX = 10_000

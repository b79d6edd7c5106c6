"""API keys: made here, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from .models import ApiKey, Organization

API_KEY_PREFIX = "tk_"

# key hash -> (expiry on time.monotonic(), ApiKey): see ``api.authentication._lookup_api_key``.
api_key_cache: dict[str, tuple[float, ApiKey]] = {}


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, org: Organization, name: str, scope: str = "write") -> tuple[ApiKey, str]:
    """Returns the stored key and the raw key, which is never stored."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(organization=org, name=name, scope=scope, prefix=raw[:10], key_hash=hash_api_key(raw))
    return key, raw


def api_key_revoke(key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key_cache.pop(key.key_hash, None)  # other processes notice within API_KEY_CACHE_SECONDS

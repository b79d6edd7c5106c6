"""Who may do what: org members write, viewers and read keys only read, chat tokens only touch
their own thread on the routes that allow them."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .authentication import Principal


class IsOrgPrincipal(BasePermission):
    def has_permission(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            return False  # DRF answers 401: no credentials
        if principal.organization is None:
            raise PermissionDenied("This account belongs to no organization.")
        if principal.is_chat_token:
            allowed = getattr(view, "chat_token_methods", ())
            if request.method not in allowed:
                raise PermissionDenied("A chat token cannot do this.")
            if str(principal.thread_id) != str(view.kwargs.get("thread_id")):
                raise PermissionDenied("This chat token is for another thread.")
            return True
        # A view whose every method reads (LangGraph's search and count are POSTs) says so.
        reads = request.method in SAFE_METHODS or getattr(view, "reads_only", False)
        if not reads and not principal.can_write:
            raise PermissionDenied("This credential may only read.")
        return True

"""Operator pages: HTML doors that read through selectors and write through services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from threads_project.routers import replica_reads

from .. import selectors, services
from ..api.pagination import KeysetPagination
from ..counts import row_count
from ..errors import ThreadError
from ..filters import ThreadFilter, ordering_fields
from ..models import Membership, Organization
from .forms import BULK_ACTIONS, BulkForm, MapRows, ThreadForm

PAGE_SIZE = 50
LIST_ORDERING = "-updatedAt"
SORTABLE = [
    ("title", "Title"),
    ("messageCount", "Messages"),
    ("lastActivityAt", "Last activity"),
    ("updatedAt", "Updated"),
    ("createdAt", "Created"),
]
MESSAGES_SHOWN = 200
EVENTS_SHOWN = 100
MAPS = ("metadata", "variables")


@dataclass
class Operator:
    org: Organization
    can_write: bool
    org_query: str = ""  # "?org=<slug>" for a superuser, so that links keep the organization
    orgs: list[Organization] = field(default_factory=list)


def operator(request, thread_id=None) -> Operator:
    """The signed-in user's organization and rights. A superuser may pick one with ``org``;
    on a thread page without it, the thread's own organization is theirs."""
    membership = Membership.objects.select_related("organization").filter(user=request.user).first()
    if request.user.is_superuser:
        orgs = list(Organization.objects.order_by("slug"))
        slug = request.GET.get("org") or (thread_id and _org_slug_of(thread_id))
        org = next((o for o in orgs if o.slug == slug), None) or (
            membership.organization if membership else (orgs[0] if orgs else None)
        )
        if org is None:
            raise Http404("No organization yet.")
        return Operator(org, True, "?" + urlencode({"org": org.slug}), orgs)
    if membership is None:
        raise PermissionDenied("You are not a member of any organization.")
    return Operator(membership.organization, membership.role == Membership.Role.MEMBER)


def _org_slug_of(thread_id) -> str | None:
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        return None
    return Organization.objects.filter(threads__pk=pk).values_list("slug", flat=True).first()


@login_required
@replica_reads  # a GET only: the bulk form's POST writes, on the primary
def thread_list(request):
    op = operator(request)
    if request.method == "POST":
        return bulk_update(request, op)
    params = request.GET.copy()
    if "metadata_key" in params:  # the "add a metadata filter" pair → metadata.<key>=<value>
        key, value = params.pop("metadata_key")[-1].strip(), params.pop("metadata_value", [""])[-1]
        if key:
            params[f"metadata.{key}"] = value
        return redirect(f"{request.path}?{params.urlencode()}")
    data = params.copy()
    data.setdefault("isArchived", "false")  # archived threads only when asked for
    threads = ThreadFilter(data, queryset=selectors.thread_qs(op.org))
    rows, ordering, context = None, LIST_ORDERING, {}
    if threads.is_valid():
        ordering = threads.form.cleaned_data.get("ordering") or LIST_ORDERING
        pages = KeysetPagination(ordering_fields(ordering), limit=PAGE_SIZE)
        try:
            rows = pages.paginate(threads.qs, request)
        except ThreadError as error:  # a cursor made up by hand
            threads.form.add_error(None, error.message)
        else:
            # Counted along the default order's index, whatever the page's order: the rows a
            # capped count reads are then spread like the organization's, not bunched at one end.
            count = row_count(threads.qs.order_by("-updated_at", "-id"))
            context = {"count": count, **page_links(params, pages, ordering)}
    return render(
        request,
        "ops/thread_list.html",
        {
            "op": op,
            "filter": threads,
            "params": params,
            "page": rows,
            **context,
            "columns": sort_links(params, ordering),
            "actions": BULK_ACTIONS,
            "tag_values": params.getlist("tag") or [""],
            "metadata_filters": [(k, params[k]) for k in params if k.startswith("metadata.")],
        },
        status=200 if rows is not None else 400,
    )


def page_links(params, pages: KeysetPagination, ordering: str) -> dict:
    """Links to the first, the previous and the next page: cursors, never an offset. Along a
    date the previous page is the newer one (newest first) or the older one."""
    first = params.copy()
    first.pop("cursor", None)

    def link(backwards: bool) -> str | None:
        cursor = pages.cursor(backwards)
        return cursor and f"?{urlencode([*first.lists(), ('cursor', [cursor])], doseq=True)}"

    labels = ("Previous", "Next")
    if ordering.lstrip("-").endswith("At"):
        labels = ("Newer", "Older") if ordering.startswith("-") else ("Older", "Newer")
    return {
        "first_url": f"?{first.urlencode()}" if pages.has_previous else None,
        "previous_url": link(True),
        "next_url": link(False),
        "link_labels": labels,
    }


def sort_links(params, current: str) -> list[tuple[str, str, str]]:
    """``(label, url, arrow)`` per sortable column: a click sorts by it, a second click reverses."""
    links = []
    for name, label in SORTABLE:
        if current.lstrip("-") == name:
            target, arrow = (name if current.startswith("-") else f"-{name}"), ("↓" if current.startswith("-") else "↑")
        else:
            target, arrow = (name if name == "title" else f"-{name}"), ""
        query = params.copy()
        query["ordering"] = target
        query.pop("cursor", None)
        links.append((label, f"?{query.urlencode()}", arrow))
    return links


def bulk_update(request, op: Operator):
    if not op.can_write:
        raise PermissionDenied
    form = BulkForm(request.POST)
    if not form.is_valid():
        errors = " ".join(e for errors in form.errors.values() for e in errors)
        messages.error(request, f"Nothing changed: {errors}")
        return redirect(request.get_full_path())
    ids = form.cleaned_data["ids"]
    try:
        changed = services.threads_bulk_update(
            org=op.org, ids=ids, patch=form.patch(), actor=services.Actor.user(request.user)
        )
    except ThreadError as error:  # one thread refused it (e.g. its 33rd tag); each has its own
        messages.error(
            request,
            f"Stopped at a thread that refused the change: {error.message} Threads before it in the list were changed.",
        )
    else:
        label = BULK_ACTIONS[form.cleaned_data["action"]][0]
        messages.success(request, f"{label}: {changed} of {len(ids)} selected thread(s) changed.")
    return redirect(request.get_full_path())


@login_required
def thread_detail(request, thread_id):
    op = operator(request, thread_id)
    try:
        thread = selectors.thread_get(op.org, thread_id)
    except ThreadError:
        raise Http404("Thread not found.") from None
    status = 200
    if request.method == "POST":
        if not op.can_write:
            raise PermissionDenied
        form = ThreadForm(request.POST)
        maps = [MapRows.from_post(name, request.POST) for name in MAPS]
        if form.is_valid() and save(request, op, thread, form, maps):
            return redirect(request.get_full_path())
        status = 412 if form.conflict else 400
    else:
        form = ThreadForm(initial=ThreadForm.initial_for(thread))
        maps = [MapRows.from_stored(name, getattr(thread, name)) for name in MAPS]
    return render(
        request,
        "ops/thread_detail.html",
        {
            "op": op,
            "thread": thread,
            "form": form,
            "maps": maps,
            "events": selectors.thread_events(op.org, thread.pk).order_by("-id")[:EVENTS_SHOWN],
            "messages_shown": thread.messages.order_by("created_at", "id")[:MESSAGES_SHOWN],
            "list_url": reverse("ops:thread-list") + op.org_query,
        },
        status=status,
    )


@login_required
@require_POST
def message_delete(request, thread_id, message_id):
    """The thread page's "Delete" button of one message: ``message_delete``, back to the page."""
    op = operator(request, thread_id)
    if not op.can_write:
        raise PermissionDenied
    try:
        thread = services.message_delete(
            org=op.org, thread_id=thread_id, message_id=message_id, actor=services.Actor.user(request.user)
        )
    except ThreadError as error:
        if error.code == "thread_not_found":
            raise Http404("Thread not found.") from None
        messages.error(request, "That message was already deleted.")
    else:
        messages.success(request, f"Message deleted (version {thread.version}).")
    return redirect(reverse("ops:thread-detail", args=[thread_id]) + op.org_query)


def save(request, op: Operator, thread, form: ThreadForm, maps: list[MapRows]) -> bool:
    """One ``thread_update`` with the page's version; a ThreadError goes next to its field."""
    try:
        patch = form.patch(thread)
        for rows in maps:
            if changes := rows.patch(getattr(thread, rows.name)):
                patch[rows.name] = changes
        updated = services.thread_update(
            org=op.org,
            thread_id=thread.pk,
            patch=patch,
            actor=services.Actor.user(request.user),
            if_match=form.cleaned_data["version"],
        )
    except ThreadError as error:
        if error.code == "version_mismatch":
            form.conflict = True
            form.add_error(
                None,
                f"Someone changed this thread since you opened this page (it is "
                f"now at version {thread.version}). Nothing was saved: reload the "
                f"page to see their changes, then make yours again.",
            )
        elif not (form.show_error(error) or any(rows.show_error(error) for rows in maps)):
            form.add_error(None, error.message)
        return False
    if updated.version == thread.version:
        messages.info(request, "Nothing to save: no field was changed.")
    else:
        messages.success(request, f"Saved (version {updated.version}).")
    return True

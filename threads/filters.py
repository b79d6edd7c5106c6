"""ThreadFilter: the one filter of the thread list, shared by the API and the operator pages."""

from __future__ import annotations

import django_filters
from django import forms
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.expressions import RawSQL

from . import merge
from .errors import ThreadError

BOOL_CHOICES = [("true", "true"), ("false", "false"), ("any", "any")]
# Wire name -> model field, for ordering.
ORDERINGS = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "lastActivityAt": "last_activity_at",
    "title": "title",
    "messageCount": "message_count",
}
ORDERING_CHOICES = [(f"{sign}{name}", f"{sign}{name}") for name in ORDERINGS for sign in ("", "-")]
DEFAULT_ORDERING = "-createdAt"
METADATA_PREFIX = "metadata."


class ThreadFilterForm(forms.Form):
    """Adds the repeatable ``tag`` and the open-ended ``metadata.<key>`` parameters, and
    refuses a NUL character in any parameter (PostgreSQL cannot compare it)."""

    tags: list[str] = []
    metadata_pairs: list[tuple[str, str]] = []

    def clean(self):
        cleaned = super().clean()
        data = self.data
        for name in data:
            for value in data.getlist(name):
                if "\x00" in name or "\x00" in value:
                    raise forms.ValidationError("Parameters must not contain the NUL character.")
        try:
            self.tags = merge.normalize_tags([t for t in data.getlist("tag") if t.strip()])
        except ThreadError as error:
            self.add_error(None, forms.ValidationError(f"tag: {error.message}"))
        self.metadata_pairs = [
            (name[len(METADATA_PREFIX) :], value)
            for name in data
            if name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX)
            for value in data.getlist(name)
        ]
        # Each is one clause of the query; more than a thread can hold could never match.
        if len(self.tags) > merge.TAGS_MAX:
            raise forms.ValidationError(f"tag: at most {merge.TAGS_MAX} tags.")
        if len(self.metadata_pairs) > merge.METADATA_KEYS_MAX:
            raise forms.ValidationError(f"metadata: at most {merge.METADATA_KEYS_MAX} filters.")
        return cleaned


class _Shared(dict):
    """A FilterSet's filters and its form's fields, shared by every instance. django-filter and
    Django's forms deep-copy them for each instance, so that one may change its own; ThreadFilter's
    never do (no filter needs its parent: every ``method`` is a plain function), and the copies were
    a third of a list request's CPU."""

    def __deepcopy__(self, memo) -> dict:
        return dict(self)


def _unchanged(queryset, name, value):
    return queryset  # ordering is applied by the paginator or the page


def _bool_filter(field: str) -> django_filters.ChoiceFilter:
    def apply(queryset, name, value):
        return queryset if value in ("", "any", None) else queryset.filter(**{field: value == "true"})

    return django_filters.ChoiceFilter(choices=BOOL_CHOICES, method=apply)


class ThreadFilter(django_filters.FilterSet):
    isArchived = _bool_filter("is_archived")
    visibleInUi = _bool_filter("visible_in_ui")
    isActive = _bool_filter("is_active")
    isPinned = _bool_filter("is_pinned")
    projectId = django_filters.CharFilter(field_name="project_id")
    assistantId = django_filters.CharFilter(field_name="assistant_id")
    userId = django_filters.CharFilter(field_name="user_id")
    search = django_filters.CharFilter(field_name="title", lookup_expr="icontains")
    createdAfter = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gt")
    createdBefore = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updatedAfter = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gt")
    ordering = django_filters.ChoiceFilter(choices=ORDERING_CHOICES, method=_unchanged)

    class Meta:
        form = ThreadFilterForm
        fields: list[str] = []

    def get_form_class(self):
        # django-filter builds a new form class (fields, labels) for every FilterSet, i.e. every
        # list request: more than half of a page's time. The class depends on nothing in the
        # request, so build it once.
        cls = type(self)
        if "_form_class" not in cls.__dict__:
            cls._form_class = super().get_form_class()
            cls._form_class.base_fields = _Shared(cls._form_class.base_fields)
        return cls._form_class

    @property
    def ordering_value(self) -> str:
        return (self.form.cleaned_data.get("ordering") if self.is_valid() else "") or DEFAULT_ORDERING

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        for tag in self.form.tags:
            queryset = queryset.filter(_has_tag(tag))
        for key, value in self.form.metadata_pairs:
            queryset = _metadata_equals(queryset, key, value)
        return queryset


ThreadFilter.base_filters = _Shared(ThreadFilter.base_filters)


def _json_exists(sql: str, params: tuple) -> ExpressionWrapper:
    """A SQLite ``EXISTS`` over ``json_each`` of the thread row."""
    return ExpressionWrapper(RawSQL(sql, params), output_field=BooleanField())


def _has_tag(tag: str):
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])  # jsonb @>, served by the GIN index
    return _json_exists("EXISTS (SELECT 1 FROM json_each(threads_thread.tags) WHERE json_each.value = %s)", (tag,))


def _metadata_equals(queryset: QuerySet, key: str, value: str) -> QuerySet:
    if connection.vendor == "postgresql":
        return queryset.filter(metadata__contains={key: value})
    return queryset.filter(
        _json_exists(
            "EXISTS (SELECT 1 FROM json_each(threads_thread.metadata) WHERE json_each.key = %s"
            " AND json_each.type = 'text' AND json_each.value = %s)",
            (key, value),
        )
    )


def ordering_fields(value: str) -> list[tuple[str, bool]]:
    """``-createdAt`` -> ``[("created_at", True), ("id", True)]`` (field, descending)."""
    descending = value.startswith("-")
    field = ORDERINGS[value.lstrip("-")]
    return [(field, descending), ("id", descending)]

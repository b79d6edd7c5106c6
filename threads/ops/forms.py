"""The operator pages' forms: posted fields become a canonical patch; the service judges it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from itertools import zip_longest

from django import forms

from .. import merge
from ..errors import ThreadError

BULK_ACTIONS = {
    "archive": ("Archive", {"isArchived": True}),
    "unarchive": ("Unarchive", {"isArchived": False}),
    "hide": ("Hide", {"visibleInUi": False}),
    "show": ("Show", {"visibleInUi": True}),
    "pin": ("Pin", {"isPinned": True}),
    "unpin": ("Unpin", {"isPinned": False}),
    "add_tag": ("Add tag", None),
    "remove_tag": ("Remove tag", None),
}
FLAGS = {"isArchived": "Archived", "isActive": "Active", "visibleInUi": "Visible in UI", "isPinned": "Pinned"}
IDS = {"projectId": "Project ID", "assistantId": "Assistant ID", "userId": "User ID"}


class BulkForm(forms.Form):
    ids = forms.Field(widget=forms.MultipleHiddenInput, required=False)
    action = forms.ChoiceField(choices=[(k, label) for k, (label, _) in BULK_ACTIONS.items()])
    tag = forms.CharField(required=False, strip=False)

    def clean_ids(self) -> list[str]:
        ids = [i for i in self.cleaned_data["ids"] or [] if _is_uuid(i)]
        if not ids:
            raise forms.ValidationError("Select at least one thread.")
        return ids

    def clean(self):
        cleaned = super().clean()
        tag_action = cleaned.get("action") in ("add_tag", "remove_tag")
        if tag_action and not cleaned.get("tag", "").strip():
            self.add_error("tag", "Enter the tag to add or remove.")
        elif "action" in cleaned:
            try:
                merge.parse_patch(self.patch())  # the service's own parser, before any write
            except ThreadError as error:
                self.add_error("tag", error.message)
        return cleaned

    def patch(self) -> dict:
        action = self.cleaned_data["action"]
        if action == "add_tag":
            return {"addTags": [self.cleaned_data["tag"]]}
        if action == "remove_tag":
            return {"removeTags": [self.cleaned_data["tag"]]}
        return dict(BULK_ACTIONS[action][1])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class ThreadForm(forms.Form):
    """Title, tags, flags and ids; the metadata and variables rows are ``MapRows``."""

    title = forms.CharField(label="Title", required=False, strip=False)
    tags = forms.CharField(label="Tags", required=False, help_text="Comma-separated.")
    isArchived = forms.BooleanField(label=FLAGS["isArchived"], required=False)
    isActive = forms.BooleanField(label=FLAGS["isActive"], required=False)
    visibleInUi = forms.BooleanField(label=FLAGS["visibleInUi"], required=False)
    isPinned = forms.BooleanField(label=FLAGS["isPinned"], required=False)
    projectId = forms.CharField(label=IDS["projectId"], required=False)
    assistantId = forms.CharField(label=IDS["assistantId"], required=False)
    userId = forms.CharField(label=IDS["userId"], required=False)
    version = forms.IntegerField(widget=forms.HiddenInput)

    conflict = False  # set when the page's version is no longer the stored one

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")  # labels read "Title", "Tags", …
        super().__init__(*args, **kwargs)

    @classmethod
    def initial_for(cls, thread) -> dict:
        return {
            "title": thread.title,
            "tags": merge.join_tags(thread.tags),
            "isArchived": thread.is_archived,
            "isActive": thread.is_active,
            "visibleInUi": thread.visible_in_ui,
            "isPinned": thread.is_pinned,
            "projectId": thread.project_id or "",
            "assistantId": thread.assistant_id or "",
            "userId": thread.user_id or "",
            "version": thread.version,
        }

    def patch(self, thread) -> dict:
        """The fields the operator changed, with canonical names and shapes. A field is changed
        when it differs from what the page showed, as a browser posts it back (so a title with
        a line break or a tag with a comma survives an unrelated save)."""
        shown = self.initial_for(thread)
        patch = {
            name: value
            for name, value in self.cleaned_data.items()
            if name != "version" and value != _as_posted(shown[name], self.fields[name])
        }
        if "tags" in patch:
            patch["tags"] = merge.split_tags(patch["tags"])
        for name in IDS:
            if name in patch:
                patch[name] = patch[name] or None
        return patch

    def show_error(self, error: ThreadError) -> bool:
        """Put a service error next to its field; False when it names none of ours."""
        name = (error.param or "").split(".")[0]
        if name in self.fields and name != "version":
            self.add_error(name, error.message)
            return True
        return False


@dataclass
class Row:
    original: str
    key: str
    value: str
    error: str = ""

    @property
    def lines(self) -> int:
        return min(8, self.value.count("\n") + 1)


class MapRows:
    """One row editor (``metadata`` or ``variables``): posted rows → merge patch.

    Each row posts ``<name>_original`` (the key it was loaded with, hidden), ``<name>_key`` and
    ``<name>_value``. An emptied key removes the original key; a changed key renames it. A list
    value (metadata may hold lists of strings) is edited as JSON text.
    """

    def __init__(self, name: str, rows: list[Row]) -> None:
        self.name = name
        self.rows = rows
        self.error = ""  # an error about the whole map

    @classmethod
    def from_stored(cls, name: str, values: dict) -> MapRows:
        return cls(name, [Row(k, k, _as_text(v)) for k, v in values.items()])

    @classmethod
    def from_post(cls, name: str, data) -> MapRows:
        columns = (data.getlist(f"{name}_{part}") for part in ("original", "key", "value"))
        rows = [Row(o, k if k.strip() else "", v) for o, k, v in zip_longest(*columns, fillvalue="")]
        return cls(name, [r for r in rows if r.original or r.key or r.value])

    @property
    def rows_with_blank(self) -> list[Row]:
        return [*self.rows, Row("", "", "")]

    def patch(self, stored: dict) -> dict:
        """Changed keys set, removed keys null. Raises ThreadError for rows it cannot read."""
        new: dict = {}
        for row in self.rows:
            if not row.key:
                if not row.original:
                    raise ThreadError("invalid_parameters", "A value needs a key.", self.name)
                continue
            # A key shown in an <input> comes back without line breaks: still the same key.
            key = row.original if row.key == _one_line(row.original) else row.key
            if key in new:
                raise ThreadError("invalid_parameters", "This key appears twice.", f"{self.name}.{key}")
            new[key] = _from_text(row.value, stored.get(row.original), self.name, key)
        return merge.map_patch(stored, new)

    def show_error(self, error: ThreadError) -> bool:
        name, _, key = (error.param or "").partition(".")
        if name != self.name:
            return False
        row = next((r for r in self.rows if key and r.key == key), None)
        if row is None:
            self.error = error.message
        else:
            row.error = error.message
        return True


def _one_line(text: str) -> str:
    """An ``<input type=text>`` drops line breaks from the value it shows."""
    return text.replace("\r", "").replace("\n", "")


def _as_posted(value, field: forms.Field):
    """What a browser posts back for an unchanged field showing ``value``."""
    if isinstance(value, bool):
        return value
    return _one_line(value).strip() if getattr(field, "strip", False) else _one_line(value)


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _from_text(text: str, stored, name: str, key: str):
    """A row's value: JSON for a key that holds a list, otherwise the text as typed (with the
    textarea's CRLF line breaks back to LF)."""
    text = text.replace("\r\n", "\n")
    if not isinstance(stored, list):
        return text
    if text == _as_text(stored):
        return stored
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise ThreadError(
            "invalid_parameters", 'This key holds a list: enter it as JSON, e.g. ["a", "b"].', f"{name}.{key}"
        )
    return value

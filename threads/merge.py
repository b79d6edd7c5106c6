"""The merge PATCH rules, as pure functions: no ORM, no HTTP.

A request body is first *parsed* (strict types, per-value limits, unknown and read-only fields
rejected), then *applied* to the stored state, then the merged state is *validated* (limits that
depend on the whole map), and finally *diffed* against the stored state for the history.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeAlias

from .errors import ThreadError, invalid

JSONValue: TypeAlias = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
State: TypeAlias = dict[str, Any]  # internal field name -> value
Patch: TypeAlias = dict[str, Any]  # canonical field name -> parsed value

# Canonical (wire) name -> model attribute, for every writable field.
WRITABLE: dict[str, str] = {
    "title": "title",
    "metadata": "metadata",
    "variables": "variables",
    "tags": "tags",
    "isArchived": "is_archived",
    "isActive": "is_active",
    "visibleInUi": "visible_in_ui",
    "isPinned": "is_pinned",
    "projectId": "project_id",
    "assistantId": "assistant_id",
    "userId": "user_id",
}
TAG_OPS = ("addTags", "removeTags")
READ_ONLY = frozenset(
    {"id", "object", "organizationId", "messageCount", "lastActivityAt", "createdAt",
     "updatedAt", "version"}
)
BOOLEAN_FIELDS = ("isArchived", "isActive", "visibleInUi", "isPinned")
ID_FIELDS = ("projectId", "assistantId", "userId")

DEFAULT_STATE: State = {
    "title": "",
    "metadata": {},
    "variables": {},
    "tags": [],
    "is_archived": False,
    "is_active": True,
    "visible_in_ui": True,
    "is_pinned": False,
    "project_id": None,
    "assistant_id": None,
    "user_id": None,
}

TITLE_MAX = 256
ID_MAX = 128
KEY_MAX = 64
TAG_MAX = 64
TAGS_MAX = 32
METADATA_KEYS_MAX = 16
METADATA_VALUE_MAX = 512
METADATA_LIST_MAX = 16
VARIABLES_KEYS_MAX = 64
VARIABLES_VALUE_MAX = 4096
CONTENT_MAX = 100_000
MESSAGE_ROLES = ("user", "assistant", "system", "tool")


# --- parsing -------------------------------------------------------------------------------

def check_string(value: Any, param: str, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise invalid(f"'{param}' must be {what}.", param)
    if "\x00" in value:
        raise invalid(f"'{param}' must not contain the NUL character (U+0000).", param)
    return value


def parse_patch(data: Any, *, allow_id: bool = False, fields: frozenset[str] | None = None) -> Patch:
    """Check a PATCH (or create) body and return it with values normalised.

    ``fields`` narrows the writable set (a chat token may write only metadata and variables).
    """
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    allowed = set(WRITABLE) | set(TAG_OPS) if fields is None else set(fields)
    patch: Patch = {}
    for name, value in data.items():
        if name == "id" and allow_id:
            patch["id"] = parse_uuid(value, "id")
        elif name in allowed:
            patch[name] = _PARSERS[name](value, name)
        elif name in READ_ONLY or name in WRITABLE or name in TAG_OPS:
            raise invalid(f"'{name}' is read-only.", name)
        else:
            raise invalid(f"Unknown field '{name}'.", name)
    return patch


def parse_uuid(value: Any, param: str) -> str:
    check_string(value, param, "a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(f"'{param}' must be a UUID.", param) from None


def _parse_title(value: Any, param: str) -> str:
    if value is None:
        return ""
    check_string(value, param)
    if len(value) > TITLE_MAX:
        raise ThreadError("title_too_long", f"Title cannot exceed {TITLE_MAX} characters.", param)
    return value


def _parse_bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"'{param}' must be a boolean.", param)
    return value


def _parse_external_id(value: Any, param: str) -> str | None:
    if value is None:
        return None
    check_string(value, param)
    if len(value) > ID_MAX:
        raise invalid(f"'{param}' cannot exceed {ID_MAX} characters.", param)
    return value


def _check_key(key: str, field: str) -> None:
    param = f"{field}.{key}"
    if "\x00" in key:
        raise invalid(f"Keys of '{field}' must not contain the NUL character (U+0000).", field)
    if not 1 <= len(key) <= KEY_MAX:
        raise ThreadError(
            f"{field}_key_invalid", f"Keys of '{field}' must be 1 to {KEY_MAX} characters.", param
        )


def _parse_metadata_value(value: Any, param: str) -> JSONValue:
    if isinstance(value, list):
        if len(value) > METADATA_LIST_MAX:
            raise ThreadError(
                "metadata_value_too_long",
                f"A metadata list cannot hold more than {METADATA_LIST_MAX} strings.",
                param,
            )
        for item in value:
            _parse_metadata_value(check_string(item, param, "a string"), param)
        return list(value)
    check_string(value, param, "a string, a list of strings or null")
    if len(value) > METADATA_VALUE_MAX:
        raise ThreadError(
            "metadata_value_too_long",
            f"Metadata values cannot exceed {METADATA_VALUE_MAX} characters.",
            param,
        )
    return value


def _parse_variables_value(value: Any, param: str) -> str:
    check_string(value, param, "a string or null")
    if len(value) > VARIABLES_VALUE_MAX:
        raise ThreadError(
            "variables_value_too_long",
            f"Variable values cannot exceed {VARIABLES_VALUE_MAX} characters.",
            param,
        )
    return value


def _map_parser(value_parser):
    def parse(value: Any, field: str) -> dict[str, JSONValue] | None:
        if value is None:
            return None  # clears the whole map
        if not isinstance(value, dict):
            raise invalid(f"'{field}' must be an object or null.", field)
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            _check_key(key, field)
            out[key] = None if item is None else value_parser(item, f"{field}.{key}")
        return out

    return parse


def _parse_tags(value: Any, param: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"'{param}' must be a list of strings.", param)
    return normalize_tags(value, param)


def normalize_tags(values: list[Any], param: str = "tags") -> list[str]:
    """Trim, lower-case and de-duplicate in order; each tag 1–64 characters.

    Linear in the length of the list: a body may hold tens of thousands of tags."""
    out: dict[str, None] = {}  # ordered, with constant-time membership
    for item in values:
        tag = check_string(item, param, "a list of strings").strip().lower()
        if not 1 <= len(tag) <= TAG_MAX:
            raise ThreadError("tags_invalid", f"Each tag must be 1 to {TAG_MAX} characters.", param)
        out[tag] = None
    return list(out)


_PARSERS = {
    "title": _parse_title,
    "metadata": _map_parser(_parse_metadata_value),
    "variables": _map_parser(_parse_variables_value),
    "tags": _parse_tags,
    "addTags": _parse_tags,
    "removeTags": _parse_tags,
    **{name: _parse_bool for name in BOOLEAN_FIELDS},
    **{name: _parse_external_id for name in ID_FIELDS},
}


# --- applying and validating --------------------------------------------------------------

def merge_map(current: dict[str, JSONValue], changes: dict[str, JSONValue] | None) -> dict:
    """Set each named key, remove a key whose value is None; ``None`` for the whole clears."""
    if changes is None:
        return {}
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def map_patch(old: dict[str, Any], new: Any) -> Any:
    """The merge patch that turns map ``old`` into ``new`` (the inverse of ``merge_map``): changed
    keys set, removed keys null. A ``new`` that is not a map is returned as it is (None clears the
    map; anything else is refused by ``parse_patch``)."""
    if not isinstance(new, dict):
        return new
    patch = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in old if key not in new})
    return patch


def apply_patch(state: State, patch: Patch) -> State:
    """The state after the patch. ``state`` is not modified."""
    new = dict(state)
    for name, value in patch.items():
        if name in ("metadata", "variables"):
            new[name] = merge_map(state[name], value)
        elif name in WRITABLE:
            new[WRITABLE[name]] = value
    if "addTags" in patch:
        new["tags"] = list(dict.fromkeys(new["tags"] + patch["addTags"]))
    if "removeTags" in patch:
        removed = set(patch["removeTags"])
        new["tags"] = [t for t in new["tags"] if t not in removed]
    return new


def validate_state(state: State) -> None:
    """Limits that hold for the whole merged thread."""
    if len(state["metadata"]) > METADATA_KEYS_MAX:
        raise ThreadError(
            "metadata_limit_exceeded",
            f"Metadata cannot exceed {METADATA_KEYS_MAX} key-value pairs",
            "metadata",
        )
    if len(state["variables"]) > VARIABLES_KEYS_MAX:
        raise ThreadError(
            "variables_limit_exceeded",
            f"Variables cannot exceed {VARIABLES_KEYS_MAX} key-value pairs",
            "variables",
        )
    if len(state["tags"]) > TAGS_MAX:
        raise ThreadError("tags_invalid", f"A thread cannot have more than {TAGS_MAX} tags.", "tags")


def diff(old: State, new: State) -> dict[str, Any]:
    """``{field: {from, to}}``, and for metadata/variables ``{field: {key: {from, to}}}``."""
    changes: dict[str, Any] = {}
    for name, attr in WRITABLE.items():
        before, after = old[attr], new[attr]
        if before == after:
            continue
        if attr in ("metadata", "variables"):
            changes[name] = {
                key: {"from": before.get(key), "to": after.get(key)}
                for key in sorted(set(before) | set(after))
                if before.get(key) != after.get(key)
            }
        else:
            changes[name] = {"from": before, "to": after}
    return changes


# --- messages -------------------------------------------------------------------------------

def parse_message(data: Any, *, exported: bool = False) -> dict[str, Any]:
    """Check one message body: ``{role, content, metadata?}``.

    ``exported``: a message in the canonical output shape, as ``import_threads`` reads it; its
    ``id`` and ``createdAt`` are required and kept (as ``id`` and ``created_at``), ``object``
    and ``threadId`` are ignored.
    """
    if not isinstance(data, dict):
        raise invalid("A message must be a JSON object.")
    known = {"role", "content", "metadata"} | (EXPORTED_MESSAGE_FIELDS if exported else set())
    unknown = set(data) - known
    if unknown:
        name = sorted(unknown)[0]
        raise invalid(f"Unknown field '{name}'.", name)
    role = data.get("role")
    if role not in MESSAGE_ROLES:
        raise invalid(f"'role' must be one of {', '.join(MESSAGE_ROLES)}.", "role")
    content = check_string(data.get("content"), "content")
    if len(content) > CONTENT_MAX:
        raise invalid(f"'content' cannot exceed {CONTENT_MAX} characters.", "content")
    metadata = merge_map({}, _PARSERS["metadata"](data.get("metadata") or {}, "metadata"))
    validate_state({**DEFAULT_STATE, "metadata": metadata})
    parsed = {"role": role, "content": content, "metadata": metadata}
    if exported:
        parsed["id"] = parse_uuid(data.get("id"), "id")
        parsed["created_at"] = parse_datetime(data.get("createdAt"), "createdAt")
    return parsed


EXPORTED_MESSAGE_FIELDS = frozenset({"id", "object", "threadId", "createdAt"})


def parse_datetime(value: Any, param: str) -> datetime:
    """An ISO-8601 time with its offset (``Z`` or ``+hh:mm``), as the API renders them."""
    check_string(value, param, "an ISO-8601 date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise invalid(f"'{param}' must be an ISO-8601 date and time with an offset.", param)
    return parsed


def format_datetime(value: datetime | None) -> str | None:
    """An aware time as every door renders it: ISO-8601 in UTC, ``Z`` for ``+00:00``
    (DRF's rendering with TIME_ZONE UTC)."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

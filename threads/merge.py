"""The merge PATCH rules, as pure functions: no ORM, no HTTP.

A request body is first *parsed* (strict types, per-value limits, unknown and read-only fields
rejected), then *applied* to the stored state, then the merged state is *validated* (limits that
depend on the whole map), and finally *diffed* against the stored state for the history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeAlias

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
    {"id", "object", "organizationId", "messageCount", "lastActivityAt", "createdAt", "updatedAt", "version"}
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


@dataclass(frozen=True)
class MapLimits:
    """The rules of one map field (``metadata``, ``variables``), which hold after every merge."""

    keys_max: int  # keys in the map
    value_max: int  # characters in a string value (and in each string of a list value)
    items_max: int | None  # strings in a list value; None: a value cannot be a list
    keys_code: str  # too many keys
    key_code: str  # a key not 1 to KEY_MAX characters
    value_code: str  # a value or list too long
    label: str  # the map, as its messages start ("Metadata cannot exceed …")
    value_label: str  # its values ("Metadata values cannot exceed …")


# The stored-state rules as data: merge.py checks them (``state_error``) and the PostgreSQL
# statement of merge_sql.py is generated from the same table.
STATE_LIMITS: dict[str, MapLimits] = {
    "metadata": MapLimits(
        keys_max=METADATA_KEYS_MAX,
        value_max=METADATA_VALUE_MAX,
        items_max=METADATA_LIST_MAX,
        keys_code="metadata_limit_exceeded",
        key_code="metadata_key_invalid",
        value_code="metadata_value_too_long",
        label="Metadata",
        value_label="Metadata values",
    ),
    "variables": MapLimits(
        keys_max=VARIABLES_KEYS_MAX,
        value_max=VARIABLES_VALUE_MAX,
        items_max=None,
        keys_code="variables_limit_exceeded",
        key_code="variables_key_invalid",
        value_code="variables_value_too_long",
        label="Variables",
        value_label="Variable values",
    ),
}
TAGS_CODE = "tags_invalid"


class StateError(NamedTuple):
    code: str
    param: str
    message: str

    def exception(self) -> ThreadError:
        return ThreadError(self.code, self.message, self.param)


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


def _parse_map(value: Any, field: str) -> dict[str, JSONValue] | None:
    """A metadata or variables patch: ``None`` clears the whole map, a null value removes its key.

    Each key and value must already meet the map's rules (``entry_rule``), which also hold for the
    merged map."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"'{field}' must be an object or null.", field)
    for key, item in value.items():
        if "\x00" in key:
            raise invalid(f"Keys of '{field}' must not contain the NUL character (U+0000).", field)
        texts = item if isinstance(item, list) else [item]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise invalid(f"'{field}.{key}' must not contain the NUL character (U+0000).", f"{field}.{key}")
        rule = _key_rule(key) if item is None else entry_rule(field, key, item)
        if rule is not None:
            raise rule_error(field, rule, key).exception()
    return dict(value)


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
            raise ThreadError(TAGS_CODE, rule_error("tags", "tag").message, param)
        out[tag] = None
    return list(out)


def split_tags(text: str) -> list[str]:
    """Tags typed as comma-separated text (the operator pages and the admin), as the list a
    patch carries; ``normalize_tags`` then judges each one like any client's."""
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def join_tags(tags: list[str]) -> str:
    return ", ".join(tags)


_PARSERS = {
    "title": _parse_title,
    "metadata": _parse_map,
    "variables": _parse_map,
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
    """The state after the patch. ``state`` is not modified.

    ``addTags`` and ``removeTags`` apply, after ``tags``, to the list with its duplicates dropped."""
    new = dict(state)
    for name, value in patch.items():
        if name in STATE_LIMITS:
            new[name] = merge_map(state[name], value)
        elif name in WRITABLE:
            new[WRITABLE[name]] = value
    if "addTags" in patch or "removeTags" in patch:
        removed = set(patch.get("removeTags", ()))
        added = dict.fromkeys(new["tags"] + patch.get("addTags", []))
        new["tags"] = [tag for tag in added if tag not in removed]
    return new


def plan(state: State, patch: Patch) -> tuple[State, dict[str, Any]]:
    """The stored state after a parsed patch and the history diff; a raised ``ThreadError`` when
    the merged state breaks a rule. Every door's write comes here, or to the PostgreSQL statement
    generated from the same rules (merge_sql.py)."""
    new = apply_patch(state, patch)
    error = patch_error(new, patch)
    if error is not None:
        raise error.exception()
    return new, diff(state, new)


def check_version(version: int, if_match: int | None) -> None:
    """``If-Match``: the write happens only at the version the client names."""
    if if_match is not None and version != if_match:
        raise ThreadError("version_mismatch", f"The thread is at version {version}, not {if_match}.", "If-Match")


def _key_rule(key: str) -> str | None:
    return None if 1 <= len(key) <= KEY_MAX else "key"


def entry_rule(field: str, key: str, value: Any) -> str | None:
    """The first rule of map ``field`` that one entry breaks, if any: ``key`` (not 1 to KEY_MAX
    characters), ``type`` (not a string, nor a list where lists are allowed), ``list`` (too many
    strings), ``item`` (a list holding something else than a string), ``value`` (too long)."""
    limits = STATE_LIMITS[field]
    if _key_rule(key):
        return "key"
    if isinstance(value, str):
        return "value" if len(value) > limits.value_max else None
    if not isinstance(value, list) or limits.items_max is None:
        return "type"
    if len(value) > limits.items_max:
        return "list"
    for item in value:
        if not isinstance(item, str):
            return "item"
        if len(item) > limits.value_max:
            return "value"
    return None


def rule_error(field: str, rule: str, key: str = "") -> StateError:
    """The error of one broken stored-state rule: ``keys`` (too many keys in map ``field``), an
    ``entry_rule`` of its ``key``, or for ``tags``: ``tags`` (too many), ``tag`` (one not a string
    of 1 to TAG_MAX characters)."""
    if field == "tags":
        if rule == "tags":
            return StateError(TAGS_CODE, "tags", f"A thread cannot have more than {TAGS_MAX} tags.")
        return StateError(TAGS_CODE, "tags", f"Each tag must be 1 to {TAG_MAX} characters.")
    limits, param = STATE_LIMITS[field], f"{field}.{key}"
    if rule == "keys":
        return StateError(limits.keys_code, field, f"{limits.label} cannot exceed {limits.keys_max} key-value pairs")
    if rule == "key":
        return StateError(limits.key_code, param, f"Keys of '{field}' must be 1 to {KEY_MAX} characters.")
    if rule == "list":
        message = f"A {field} list cannot hold more than {limits.items_max} strings."
        return StateError(limits.value_code, param, message)
    if rule == "value":
        message = f"{limits.value_label} cannot exceed {limits.value_max} characters."
        return StateError(limits.value_code, param, message)
    if rule == "item":
        return StateError("invalid_parameters", param, f"'{param}' must be a string.")
    what = "a string, a list of strings or null" if limits.items_max else "a string or null"
    return StateError("invalid_parameters", param, f"'{param}' must be {what}.")


def state_error(state: State) -> StateError | None:
    """The first rule the whole (merged) state breaks, or None. In this order: per map, its key
    count, then its entries by key (in code point order); then the tag count, then each tag."""
    for field, limits in STATE_LIMITS.items():
        values = state[field]
        if len(values) > limits.keys_max:
            return rule_error(field, "keys")
        for key in sorted(values):
            rule = entry_rule(field, key, values[key])
            if rule is not None:
                return rule_error(field, rule, key)
    tags = state["tags"]
    if len(tags) > TAGS_MAX:
        return rule_error("tags", "tags")
    if any(not isinstance(tag, str) or not 1 <= len(tag) <= TAG_MAX for tag in tags):
        return rule_error("tags", "tag")
    return None


def patch_error(new: State, patch: Patch) -> StateError | None:
    """The first rule that applying a parsed ``patch`` broke in ``new``, or None: a map the patch
    touches has too many keys (in ``STATE_LIMITS`` order), then, if it touches the tags, too many
    tags. Nothing else can break: each entry and tag a patch names was checked as it was parsed
    (``parse_patch``), and the stored state met every rule (each write checks), so the fields and
    entries a patch leaves alone are as valid as they were."""
    for field, limits in STATE_LIMITS.items():
        if field in patch and len(new[field]) > limits.keys_max:
            return rule_error(field, "keys")
    if any(name in patch for name in ("tags", *TAG_OPS)) and len(new["tags"]) > TAGS_MAX:
        return rule_error("tags", "tags")
    return None


def validate_state(state: State) -> None:
    """Raise the first error of ``state_error``."""
    error = state_error(state)
    if error is not None:
        raise error.exception()


def diff(old: State, new: State) -> dict[str, Any]:
    """``{field: {from, to}}``, and for metadata/variables ``{field: {key: {from, to}}}``."""
    changes: dict[str, Any] = {}
    for name, attr in WRITABLE.items():
        before, after = old[attr], new[attr]
        if before == after:
            continue
        if attr in STATE_LIMITS:
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

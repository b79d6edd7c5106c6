"""OpenAI Conversations, the shapes: ids, conversation and item objects, the input items and
metadata as OpenAI's SDK sends them, and OpenAI's error codes. No rule of the service lives here:
the checks below are of OpenAI's shapes; the service checks the rest (limits, lengths, NUL)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from .. import merge
from ..errors import ThreadError
from .base import as_strings, unix

HEX = re.compile(r"[0-9a-f]{32}")
ITEMS_MAX = 20
LIST_DEFAULT, LIST_MAX = 20, 100
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
ITEM_FIELDS = {"type", "role", "content", "id", "status", "phase"}
STATUSES = ("in_progress", "completed", "incomplete")
# The canonical metadata codes, as OpenAI names the same limits.
CODES = {
    "metadata_limit_exceeded": "object_above_max_properties",
    "metadata_key_invalid": "property_name_above_max_length",
    "metadata_value_too_long": "string_above_max_length",
}


class OpenAIError(ThreadError):
    """A refusal in OpenAI's words: a 400 with OpenAI's ``code`` (``invalid_type``, …)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = "invalid_value") -> None:
        super().__init__("invalid_parameters", message, param)
        self.openai_code = code


fail = OpenAIError


def thread_id_of(conversation_id: str) -> uuid.UUID:
    if conversation_id.startswith("conv_") and HEX.fullmatch(conversation_id[5:]):
        return uuid.UUID(conversation_id[5:])
    raise ThreadError("thread_not_found", "not found")


def conversation(thread) -> dict:
    return {
        "id": f"conv_{thread.pk.hex}",
        "object": "conversation",
        "created_at": unix(thread.created_at),
        "metadata": as_strings(thread.metadata),
    }


def item(message) -> dict:
    if message.role == "assistant":
        part = {"type": "output_text", "text": message.content, "annotations": []}
    else:
        part = {"type": "input_text", "text": message.content}
    return {
        "type": "message",
        "id": f"msg_{message.pk.hex}",
        "status": "completed",
        "role": message.role,
        "content": [part],
    }


def item_list(messages: list, has_more: bool = False) -> dict:
    data = [item(m) for m in messages]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def check_body(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise fail("The body must be a JSON object.", None, "invalid_type")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise fail(f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")
    return body


def check_metadata(value: Any) -> None:
    """OpenAI's metadata is a map of strings (or null); the service checks its limits."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise fail("Invalid type for 'metadata': expected an object, or null.", "metadata", "invalid_type")
    for key, text in value.items():
        if not isinstance(text, str):
            raise fail(f"Invalid type for 'metadata.{key}': expected a string.", f"metadata.{key}", "invalid_type")


def text_of(content: Any, where: str) -> str:
    """A message's text: the short form (a string) or a list of one text part."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise fail(f"Invalid type for '{where}': expected a string or a list of content parts.", where, "invalid_type")
    if len(content) != 1:
        raise fail(
            f"'{where}' must hold exactly one text part: this service stores a message as one text.",
            where,
            "array_above_max_length" if content else "empty_array",
        )
    part, at = content[0], f"{where}[0]"
    if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
        raise fail(f"'{at}': only 'input_text' and 'output_text' parts are supported.", f"{at}.type")
    if not isinstance(part.get("text"), str):
        raise fail(f"Invalid type for '{at}.text': expected a string.", f"{at}.text", "invalid_type")
    if part.get("annotations"):
        raise fail(f"'{at}.annotations' are not supported: send an empty list.", f"{at}.annotations")
    return part["text"]


def parse_items(items: Any, *, required: bool) -> list[dict[str, str]]:
    """OpenAI input items as canonical messages (``role``, ``content``), all checked first."""
    if items is None and not required:
        return []
    if not isinstance(items, list):
        raise fail("Invalid type for 'items': expected an array.", "items", "invalid_type")
    if len(items) > ITEMS_MAX:
        raise fail(
            f"Invalid 'items': at most {ITEMS_MAX} items may be added at a time, got {len(items)}.",
            "items",
            "array_above_max_length",
        )
    if required and not items:
        raise fail("Invalid 'items': expected at least one item.", "items", "empty_array")
    messages = []
    for i, entry in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(entry, dict):
            raise fail(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
        unknown = sorted(set(entry) - ITEM_FIELDS)
        if unknown:
            raise fail(f"Unknown parameter: '{where}.{unknown[0]}'.", f"{where}.{unknown[0]}", "unknown_parameter")
        if entry.get("type", "message") != "message":
            raise fail(f"'{where}.type': only 'message' items are supported.", f"{where}.type")
        if not isinstance(entry.get("role"), str) or entry["role"] not in ROLES:
            raise fail(f"'{where}.role' must be one of {', '.join(ROLES)}.", f"{where}.role")
        if entry.get("status") not in (None, *STATUSES) or entry.get("phase") is not None:
            name = "phase" if entry.get("phase") is not None else "status"
            raise fail(f"'{where}.{name}' is not supported here.", f"{where}.{name}")
        messages.append({"role": ROLES[entry["role"]], "content": text_of(entry.get("content"), f"{where}.content")})
    return messages


def locate(error: ThreadError, messages: list[dict[str, str]]) -> ThreadError:
    """A message the service refused (too long, a NUL), named by its place in ``items``."""
    for i, message in enumerate(messages):
        try:
            merge.parse_message(message)
        except ThreadError as refused:
            too_long = len(message["content"]) > merge.CONTENT_MAX
            code = "string_above_max_length" if too_long else "invalid_value"
            return fail(refused.message, f"items[{i}].content", code)
    return error


def item_pk(item_id: str, param: str | None = None) -> uuid.UUID:
    """An item id's message UUID; a malformed one is an unknown item (or, for ``param``, a 400)."""
    if item_id.startswith("msg_") and HEX.fullmatch(item_id[4:]):
        return uuid.UUID(item_id[4:])
    if param:
        raise fail(f"Invalid '{param}': expected an item id ('msg_…').", param)
    raise ThreadError("not_found", "not found")


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return LIST_DEFAULT
    try:
        limit = int(raw)
    except ValueError:
        raise fail("Invalid type for 'limit': expected an integer.", "limit", "invalid_type") from None
    if not 1 <= limit <= LIST_MAX:
        code = "integer_below_min_value" if limit < 1 else "integer_above_max_value"
        raise fail(f"Invalid 'limit': expected an integer from 1 to {LIST_MAX}, got {limit}.", "limit", code)
    return limit

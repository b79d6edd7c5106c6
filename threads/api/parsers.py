"""A strict JSON parser: every malformed body is a 400 ``invalid_json``, never a 500.

DRF's ``JSONParser`` lets ``RecursionError`` (a body of 10,000 nested ``[``) escape as a 500,
silently keeps the last of duplicate keys, and passes lone UTF-16 surrogates (``"\\ud800"``)
through to the database driver, which cannot encode them. This one refuses all three.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

# No body of this API nests deeper than 3 (body -> metadata -> list); 32 leaves room for the
# seed surfaces and stays far below the interpreter's recursion limit for whatever reads it next.
MAX_DEPTH = 32


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses an object naming the same key twice (RFC 8259 §4
    leaves the result undefined, so clients and this service could disagree on the value)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _check_tree(data: Any) -> None:
    """Depth at most ``MAX_DEPTH`` and no string that is not valid Unicode, without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            value.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                if key is not None:
                    key.encode("utf-8")
                stack.append((item, depth + 1))


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
            data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
            _check_tree(data)
        except RecursionError:
            raise ParseError(f"nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, UnicodeEncodeError
            raise ParseError(_describe(exc)) from None
        return data


def _describe(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"the body is not valid {exc.encoding} text"
    if isinstance(exc, UnicodeEncodeError):
        return "a string holds an unpaired UTF-16 surrogate"
    return str(exc)

"""Load a JSON request body that the database can store, or say exactly where it cannot.

PostgreSQL refuses NUL characters and lone surrogates in text and ``jsonb``, JSON has no NaN or
Infinity, and a body nested thousands of levels deep exhausts the stack of any recursive reader.
All of these are found here, before a serializer or a service sees the data, and reported with
the JSON path of the offending value (``request_metadata.opt_space.lr[1]``).

orjson reads the common, clean body quickly and already refuses NaN, Infinity, numbers that
overflow a double and lone surrogates, but it reports neither the path nor the reason in words,
and it turns integers wider than 64 bits into floats. When it refuses a body, or when a float
it produced may be such a rounded integer, the body is read again by the standard library,
which keeps integers exact and lets the walk below name the faulty value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

#: Containers nested deeper than this are refused; request metadata needs a handful of levels.
MAX_DEPTH = 64

# Floats at least this large may be integers that orjson rounded (it has no big integers).
_ROUNDED_INTEGER_FLOOR = 2.0**63
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON string literal, escapes included; used only to blank strings out of the depth count.
_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_UNPRINTABLE = re.compile("[\x00-\x1f\ud800-\udfff]")
# Error paths name at most this many levels (a too-deep body would otherwise echo itself).
_MAX_PATH_PARTS = 12
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class UnsafeJSON(ValueError):
    """The body is JSON, but a value at ``path`` cannot be accepted (``problem`` says why)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path or "body"
        self.problem = problem


class MalformedJSON(ValueError):
    """The body is not JSON at all; the message says where it breaks."""


@dataclass(frozen=True)
class _NonFinite:
    """What the standard library read for NaN, Infinity or a float literal overflowing to inf."""

    literal: str


def load_body(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` (UTF-8 JSON) and check every value; raise ``MalformedJSON`` or ``UnsafeJSON``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Refused: read it again to say why and where (or keep it, if only orjson's range was too small).
        data = _load_exact(raw, max_depth)
        check_tree(data, max_depth=max_depth)
        return data
    if check_tree(data, max_depth=max_depth):
        data = _load_exact(raw, max_depth)
    return data


def check_tree(data: Any, *, max_depth: int = MAX_DEPTH) -> bool:
    """Walk ``data`` without recursion; raise ``UnsafeJSON`` for the first bad value.

    Returns True when a float may be an integer that lost precision (see the module docstring).
    """
    maybe_rounded = False
    for path, depth, value in _walk(data):
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                raise UnsafeJSON(_render(path), f"nested deeper than {max_depth} levels")
        elif isinstance(value, str):
            _check_text(value, path, "value")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise UnsafeJSON(_render(path), "must be a finite number (no NaN or Infinity)")
            maybe_rounded = maybe_rounded or (abs(value) >= _ROUNDED_INTEGER_FLOOR and value.is_integer())
        elif isinstance(value, _NonFinite):
            raise UnsafeJSON(_render(path), f"must be a finite number, got {value.literal}")
    return maybe_rounded


def _walk(data: Any) -> Iterator[tuple[tuple[str | int, ...], int, Any]]:
    """Yield (path, depth, value) for every value and check every key on the way, depth first."""
    stack: list[tuple[tuple[str | int, ...], int, Any]] = [((), 1, data)]
    while stack:
        path, depth, value = stack.pop()
        yield path, depth, value
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, (*path, key), "key")
                stack.append(((*path, key), depth + 1, item))
        elif isinstance(value, list):
            stack.extend(((*path, index), depth + 1, item) for index, item in enumerate(value))


def _check_text(text: str, path: tuple[str | int, ...], what: str) -> None:
    if "\x00" in text:
        raise UnsafeJSON(_render(path), f"the {what} contains a NUL character (\\u0000), which cannot be stored")
    if _SURROGATE.search(text):
        raise UnsafeJSON(_render(path), f"the {what} contains a lone UTF-16 surrogate, which is not valid Unicode")


def _render(path: tuple[str | int, ...]) -> str:
    """(``"a"``, ``"b"``, 1) -> ``a.b[1]``; long paths are cut, unprintable key characters escaped."""
    text = ""
    for part in path[:_MAX_PATH_PARTS]:
        text += f"[{part}]" if isinstance(part, int) else (f".{_escape(part)}" if text else _escape(part))
    return text + ("..." if len(path) > _MAX_PATH_PARTS else "")


def _escape(key: str) -> str:
    # The path goes back to the client in JSON: a surrogate in it could not even be encoded.
    return _UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", key)


def _load_exact(raw: bytes, max_depth: int) -> Any:
    """The standard library's reading, with exact integers and markers where a number is not finite."""
    _refuse_deep_nesting(raw, max_depth)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJSON("body is not UTF-8 encoded JSON") from None
    try:
        return json.loads(text, parse_constant=_NonFinite, parse_float=_finite_or_marker)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError:
        # Python refuses to read integers of more than 4300 digits (sys.int_info.str_digits_check_threshold).
        raise MalformedJSON("a number in the body has more than 4300 digits") from None
    except RecursionError:
        # Unreachable after the depth check above; kept so that no input can crash the reader.
        raise UnsafeJSON("", f"nested deeper than {max_depth} levels") from None


def _finite_or_marker(literal: str) -> float | _NonFinite:
    value = float(literal)
    return value if math.isfinite(value) else _NonFinite(literal)


def _refuse_deep_nesting(raw: bytes, max_depth: int) -> None:
    """Count bracket depth outside string literals, iteratively, before a recursive reader sees it."""
    brackets = _STRING_LITERAL.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > max_depth:
            raise UnsafeJSON("", f"nested deeper than {max_depth} levels")

"""What PostgreSQL cannot store: found in parsed JSON before it reaches an INSERT.

Text and JSONB columns refuse U+0000, and psycopg cannot encode an unpaired UTF-16 surrogate
(`"\\ud800"` is valid JSON, not valid UTF-8). Either would fail the INSERT with a 500 after the
input was accepted; callers refuse it up front with a 400 naming the field instead.
"""

from typing import Any

NUL = "NUL characters (\\u0000)"
SURROGATE = "unpaired surrogates (\\ud800-\\udfff)"


def unstorable_text(value: Any, path: str = "") -> tuple[str, str] | None:
    """(dotted path, what is wrong) of the first key or string that cannot be stored, or None."""
    if isinstance(value, str):
        problem = _problem(value)
        return (path, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if problem := _problem(str(key)):
                return child, problem
            if found := unstorable_text(item, child):
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := unstorable_text(item, f"{path}[{index}]"):
                return found
    return None


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None

"""One way to turn a pydantic ValidationError into ``field: message`` lines.

Data files, the response policy and the reviewers' widget all report a bad record as
``file:line: field: message`` (or just ``field: message``); this is where the field
path and the message are worded, so that every edge says the same thing the same way.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError


def field_path(loc: Sequence[Any], whole: str = "record") -> str:
    """``posts.0.text`` for a location; ``whole`` when the error is about the whole object.

    pydantic marks a bad dict key with a trailing ``[key]``; the key's path says enough.
    """
    parts = [str(part) for part in loc if part != "[key]"]
    return ".".join(parts) or whole


def error_message(error: dict, allowed: Iterable[str] | None = None, noun: str = "field") -> str:
    """A short message for one pydantic error, saying how to fix it where we can.

    ``noun`` names what an unknown key is (a record's "field", a policy's "setting").
    """
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = f"; allowed: {', '.join(allowed)}" if allowed is not None else ""
        return f"unknown {noun} (check the spelling{known})"
    if kind == "literal_error":
        return f"{error['input']!r} is not allowed; use one of {error['ctx']['expected']}"
    if kind == "string_type":
        return f"must be text, got {error['input']!r}; put it in quotes"
    return str(error["msg"]).removeprefix("Value error, ")


def describe_errors(
    err: ValidationError,
    whole: str = "record",
    allowed: Iterable[str] | None = None,
    noun: str = "field",
) -> list[tuple[str, str]]:
    """``(field, message)`` for each error of ``err``, in pydantic's order."""
    allowed = list(allowed) if allowed is not None else None
    return [(field_path(e["loc"], whole), error_message(e, allowed, noun)) for e in err.errors()]


def one_line(err: ValueError) -> str:
    """A ValueError in one line: each field's problem for a ValidationError, else its text."""
    if isinstance(err, ValidationError):
        return "; ".join(f"{field}: {message}" for field, message in describe_errors(err))
    return str(err)

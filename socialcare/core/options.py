"""Typed command options: a dataclass per command, its fields' help texts become --help.

Like transformers' HfArgumentParser, but without importing transformers, so that quick
commands (validate, stats) start in a blink.
"""

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def option(default: Any = dataclasses.MISSING, *, help: str, positional: bool = False) -> Any:
    """A dataclass field with help text; lists get a fresh copy of their default."""
    metadata = {"help": help, "positional": positional}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(element type, is_list) of an annotation such as ``list[Path]`` or ``int | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _or_none(kind: type):
    """A number parser that also takes 'none' (an optional setting switched off)."""

    def parse(text: str):
        return None if text.strip().lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument per field of the options dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if typing.get_origin(hints[field.name]) is dict:
            continue  # tables of values are set in the --config JSON file, not on the command line
        kind, is_list = _base_type(hints[field.name])
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        kwargs: dict[str, Any] = {"help": field.metadata.get("help", "")}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind if kind in (str, int, float, Path) else str
            if kind in (int, float) and _is_optional(hints[field.name]):
                kwargs["type"] = _or_none(kind)
                kwargs["help"] += " ('none' for no value)"
            if typing.get_origin(kind) is typing.Literal:
                kwargs["choices"] = typing.get_args(kind)
            if is_list:
                kwargs["nargs"] = "+"
        if field.metadata.get("positional"):
            parser.add_argument(field.name, **kwargs)
            continue
        if not required:
            default = (
                field.default
                if field.default_factory is dataclasses.MISSING
                else field.default_factory()
            )
            kwargs["default"] = default
            kwargs["help"] += f" (default: {default})" if default not in (None, []) else ""
        parser.add_argument("--" + field.name.replace("_", "-"), required=required, **kwargs)


def parse_options(cls: type[T], namespace: argparse.Namespace) -> T:
    """Build the options dataclass from parsed arguments (fields not on the command line
    keep their defaults)."""
    given = {
        f.name: getattr(namespace, f.name)
        for f in dataclasses.fields(cls)
        if hasattr(namespace, f.name)
    }
    return cls(**given)


def config_defaults(cls: type, path: Path) -> dict[str, Any]:
    """Option values from a JSON experiment file, checked against the options' names."""
    import json

    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the experiment config: {err}") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of option names and values")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        kind, is_list = _base_type(hints[name])
        if kind is Path:
            values[name] = [Path(v) for v in value] if is_list else Path(value)
    return values

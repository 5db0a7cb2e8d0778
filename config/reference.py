"""Render the config reference (Markdown) from the pydantic schema."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from config.schema import AppConfig

__all__ = ["render_reference"]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list[{', '.join(_type_name(a) for a in args)}]"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"map[{_type_name(k)}, {_type_name(v)}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _bounds(f: FieldInfo) -> str:
    out = []
    for m in f.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
        for attr in ("min_length", "max_length", "pattern"):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{attr} {v}")
    return ", ".join(out)


def _models_in(tp: Any) -> list[type[BaseModel]]:
    found = []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    for a in typing.get_args(tp):
        found.extend(_models_in(a))
    return found


def _default(f: FieldInfo) -> str:
    if f.is_required():
        return "**required**"
    if f.default_factory is not None:
        return "(computed)"
    d = f.default
    if isinstance(d, BaseModel):
        return "(section)"
    if hasattr(d, "value"):
        d = d.value
    return f"`{d!r}`" if d not in (None, ()) else f"`{d!r}`"


def render_reference() -> str:
    """Markdown tables, one per config section, generated from the schema."""
    lines = [
        "# Config reference",
        "",
        "Generated from `config/schema.py` by `hallmonitor config-reference`. "
        "Unknown keys are errors. A top-level `defaults:` mapping is merged into "
        "every camera.",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("(top level)", AppConfig)]
    while queue:
        path, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## `{path}` — {model.__name__}", ""]
        doc = (model.__doc__ or "").strip().splitlines()
        if doc:
            lines += [doc[0], ""]
        lines += [
            "| field | type | default | bounds | description |",
            "|---|---|---|---|---|",
        ]
        for name, f in model.model_fields.items():
            desc = (f.description or f.title or "").replace("|", "\\|")
            lines.append(
                f"| `{name}` | {_type_name(f.annotation)} | {_default(f)} | "
                f"{_bounds(f)} | {desc} |"
            )
            for sub in _models_in(f.annotation):
                sub_path = name if path == "(top level)" else f"{path}.{name}"
                queue.append((sub_path, sub))
        lines.append("")
    return "\n".join(lines)

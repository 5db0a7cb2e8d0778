"""Load a YAML config file into a validated :class:`AppConfig`.

* YAML is read with the safe loader: ``!!python/...`` tags are refused, nothing runs.
* A top-level ``defaults:`` mapping is deep-merged into every camera before validation.
* Relative paths (data dir, models dir, secrets file, file sources) resolve against the
  config file's directory.
* Every error names the file, the line and the dotted field path.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.schema import AppConfig

__all__ = ["ConfigError", "ConfigIssue", "load_config", "load_config_text"]

MAX_CONFIG_BYTES = 1_000_000
MAX_NODES = 200_000  # guards against alias bombs ("billion laughs")


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(ValueError):
    """A config file could not be loaded; ``issues`` lists every problem."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _count_nodes(node: yaml.Node, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("too many YAML nodes (alias expansion?)")
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _count_nodes(k, budget)
            _count_nodes(v, budget)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _count_nodes(v, budget)


def _node_at(root: yaml.Node | None, path: tuple[Any, ...]) -> yaml.Node | None:
    """Deepest node along ``path`` (keys/indices), for line numbers."""
    node = root
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    node = v
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if 0 <= key < len(node.value):
                node = node.value[key]
            else:
                return node
        else:
            return node
    return node


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve(base_dir: Path, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> None:
    for key in ("data_dir", "secrets_file"):
        if isinstance(raw.get(key), str):
            raw[key] = _resolve(base_dir, raw[key])
    raw.setdefault("data_dir", _resolve(base_dir, "var"))
    det = raw.get("detector")
    if isinstance(det, dict):
        if isinstance(det.get("models_dir"), str):
            det["models_dir"] = _resolve(base_dir, det["models_dir"])
        model = det.get("model")
        if isinstance(model, str) and (model.endswith(".onnx") or "/" in model):
            det["model"] = _resolve(base_dir, model)
    elif det is None:
        raw["detector"] = {"models_dir": _resolve(base_dir, "models")}
    if isinstance(raw.get("detector"), dict):
        raw["detector"].setdefault("models_dir", _resolve(base_dir, "models"))
    storage = raw.get("storage")
    if isinstance(storage, dict) and isinstance(storage.get("media_dir"), str):
        storage["media_dir"] = _resolve(base_dir, storage["media_dir"])
    for cam in raw.get("cameras") or []:
        src = cam.get("source") if isinstance(cam, dict) else None
        for key in ("url", "detect_url"):
            if isinstance(src, dict) and isinstance(src.get(key), str):
                url = src[key]
                if "://" not in url and not url.startswith("device:"):
                    src[key] = _resolve(base_dir, url)


def _iter_issues(
    exc: ValidationError, file: str, root: yaml.Node | None, raw: dict[str, Any]
) -> Iterator[ConfigIssue]:
    errors = exc.errors()
    locs = [tuple(e["loc"]) for e in errors]
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and any(
            len(o) > len(loc) and o[: len(loc)] == loc for o in locs
        ):
            continue  # pydantic also reports the container when its items failed
        node = _node_at(root, loc)
        # A camera field that came from `defaults:` has no node under the camera.
        if loc[:1] == ("cameras",) and len(loc) > 2 and node is _node_at(root, loc[:2]):
            alt = _node_at(root, ("defaults", *loc[2:]))
            if alt is not None and alt is not _node_at(root, ("defaults",)):
                node = alt
        line = node.start_mark.line + 1 if node is not None else None
        field = ".".join(str(p) for p in loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        elif err["type"] == "missing":
            msg = "field required"
        yield ConfigIssue(file, line, field, msg)


def load_config_text(
    text: str, file: str = "<string>", base_dir: Path | None = None
) -> AppConfig:
    """Parse and validate YAML ``text``; raise :class:`ConfigError` on any problem."""
    base = base_dir or Path.cwd()
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                ConfigIssue(
                    file, None, "", f"file is larger than {MAX_CONFIG_BYTES} bytes"
                )
            ]
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _count_nodes(root, [MAX_NODES])
        raw = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise ConfigError(
            [ConfigIssue(file, line, "", f"invalid YAML: {problem}")]
        ) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(
            [ConfigIssue(file, None, "", f"invalid YAML: {exc}")]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            [ConfigIssue(file, 1, "", "top level must be a mapping of settings")]
        )
    defaults = raw.pop("defaults", None)
    if defaults is not None:
        if not isinstance(defaults, dict):
            node = _node_at(root, ("defaults",))
            raise ConfigError(
                [
                    ConfigIssue(
                        file,
                        node.start_mark.line + 1 if node else None,
                        "defaults",
                        "must be a mapping of camera fields",
                    )
                ]
            )
        cams = raw.get("cameras")
        if isinstance(cams, list):
            raw["cameras"] = [
                _deep_merge(defaults, c) if isinstance(c, dict) else c for c in cams
            ]
    _resolve_paths(raw, base)
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(list(_iter_issues(exc, file, root, raw))) from None


def load_config(path: str | os.PathLike[str]) -> AppConfig:
    """Load and validate the YAML config file at ``path``."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(p), None, "", f"cannot read: {exc.strerror}")]
        ) from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                ConfigIssue(
                    str(p), None, "", f"file is {size} bytes; limit {MAX_CONFIG_BYTES}"
                )
            ]
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigIssue(str(p), None, "", f"cannot read: {exc}")]
        ) from None
    return load_config_text(text, file=str(p), base_dir=p.resolve().parent)

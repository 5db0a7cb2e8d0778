"""``hallmonitor models``: list, verify, import and export detector models.

Sub-commands (each takes ``--models-dir`` (default ``models``) and ``--manifest``
(default ``<models-dir>/manifest.yaml``, falling back to the repository's)):

* ``list``: every manifest model with format, input size, licence, file status;
* ``verify [NAME ...]``: sha256 of each present file against the manifest;
* ``import PATH [--name N] [--force]``: load the model (format detection, one
  inference), copy it into the models directory, add a manifest entry if new;
* ``export NAME [--imgsz N]``: Ultralytics download + ONNX export (needs the
  ``ultralytics`` extra and internet), then import.

Handlers return 0 (ok), 1 (failure) or 2 (usage); messages go to stdout/stderr since
this is an interactive command.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from monitor.detector import (
    DetectorError,
    OnnxDetector,
    default_manifest_path,
    file_sha256,
    read_manifest,
)

__all__ = ["register", "cmd_list", "cmd_verify", "cmd_import", "cmd_export"]

log = logging.getLogger(__name__)


def _out(msg: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(msg + "\n")


def _err(msg: str) -> None:
    _out(f"error: {msg}", sys.stderr)


def _manifest_path(args: argparse.Namespace) -> Path:
    if args.manifest:
        return Path(args.manifest)
    local = Path(args.models_dir) / "manifest.yaml"
    return local if local.is_file() else default_manifest_path()


def _load(args: argparse.Namespace) -> tuple[Path, dict[str, dict[str, Any]]] | None:
    path = _manifest_path(args)
    try:
        return path, read_manifest(path)
    except DetectorError as exc:
        _err(str(exc))
        return None


def cmd_list(args: argparse.Namespace) -> int:
    """Print a table of manifest models and whether their files are present."""
    loaded = _load(args)
    if loaded is None:
        return 1
    path, manifest = loaded
    models_dir = Path(args.models_dir)
    _out(f"manifest {path}, models directory {models_dir}")
    _out(f"{'name':<16} {'format':<7} {'input':<9} {'file':<8} {'licence':<24} source")
    for name, e in manifest.items():
        size = e.get("input_size")
        size_s = f"{size[0]}x{size[1]}" if isinstance(size, list) else "?"
        present = "present" if (models_dir / e["file"]).is_file() else "missing"
        _out(
            f"{name:<16} {str(e.get('format', '?')):<7} {size_s:<9} {present:<8} "
            f"{str(e.get('licence', '?'))[:24]:<24} {e.get('source', '?')}"
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check sha256 of model files; 1 if any is missing, mismatched or unknown."""
    loaded = _load(args)
    if loaded is None:
        return 1
    _, manifest = loaded
    names = args.names or list(manifest)
    unknown = [n for n in names if n not in manifest]
    if unknown:
        _err(f"unknown model(s) {unknown}; known: {sorted(manifest)}")
        return 2
    models_dir = Path(args.models_dir)
    bad = 0
    for name in names:
        e = manifest[name]
        f = models_dir / e["file"]
        want = str(e.get("sha256") or "").lower()
        if not f.is_file():
            _out(f"{name}: MISSING {f}")
            bad += 1
        elif not want:
            _out(f"{name}: NO SHA256 in manifest ({f}: {file_sha256(f)})")
            bad += 1
        elif (got := file_sha256(f)) != want:
            _out(f"{name}: MISMATCH {f} sha256 {got}, manifest {want}")
            bad += 1
        else:
            _out(f"{name}: OK {want}")
    return 1 if bad else 0


def _manifest_entry(name: str, file: str, det: OnnxDetector, source: str) -> str:
    s = det.spec
    names_line = (
        ""
        if s.names_source != "manifest"
        else f"    class_names: {list(det.class_names)}\n"
    )
    return (
        f"  {name}:\n"
        f"    file: {file}\n"
        f"    sha256: {det.model_sha256}\n"
        f"    format: {s.format.value}\n"
        f"    input_size: [{det.input_size[0]}, {det.input_size[1]}]\n"
        f"    layout: NCHW\n"
        f"    colour: {'rgb' if s.rgb else 'bgr'}\n"
        f"    normalisation: {'0-1' if s.scale != 1.0 else 'none'}\n"
        f"    padding: {'centre' if s.centred else 'top_left'}\n"
        f"    pad_value: {s.pad_value}\n"
        f"{names_line}"
        f"    class_names_source: {s.names_source}\n"
        f"    source: {source}\n"
        f"    licence: unknown (imported; fill in)\n"
    )


def _import_file(
    src: Path,
    models_dir: Path,
    manifest_path: Path,
    name: str,
    force: bool,
    source: str,
) -> int:
    try:
        manifest = read_manifest(manifest_path) if manifest_path.is_file() else {}
    except DetectorError as exc:
        _err(str(exc))
        return 1
    try:
        # one inference at load: a file that parses but cannot run is refused too
        det = OnnxDetector(src, manifest_entry=manifest.get(name), warmup=1)
    except DetectorError as exc:
        _err(f"not importing: {exc}")
        return 1
    models_dir.mkdir(parents=True, exist_ok=True)
    dst = models_dir / src.name
    entry = manifest.get(name)
    if entry is not None and entry["file"] != src.name:
        _err(f"manifest already has {name!r} for file {entry['file']}; use --name")
        return 1
    if entry is not None and entry.get("sha256") not in (None, det.model_sha256):
        if not force:
            _err(
                f"{name!r} in the manifest has sha256 {entry['sha256']}, this file "
                f"has {det.model_sha256}; use --force to replace the file"
            )
            return 1
    if dst.exists() and dst.resolve() != src.resolve():
        if file_sha256(dst) != det.model_sha256 and not force:
            _err(f"{dst} exists with different content; use --force to overwrite")
            return 1
    if dst.resolve() != src.resolve():
        shutil.copyfile(src, dst)
    _out(
        f"imported {src} -> {dst}: {det.spec.format.value} "
        f"{det.input_size[0]}x{det.input_size[1]}, {len(det.class_names)} classes "
        f"({det.spec.names_source}), sha256 {det.model_sha256}"
    )
    if entry is None:
        if not manifest_path.is_file():
            manifest_path.write_text("schema_version: 1\nmodels:\n", encoding="utf-8")
        text = manifest_path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text += "\n"
        # append as text so the manifest's comments survive
        text += _manifest_entry(name, src.name, det, source)
        manifest_path.write_text(text, encoding="utf-8")
        _out(f"added {name!r} to {manifest_path}; fill in its licence")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Check that a model loads, copy it into the models directory, record it."""
    src = Path(args.path)
    if not src.is_file():
        _err(f"{src} is not a file")
        return 2
    if src.suffix != ".onnx":
        _err(f"{src} is not an .onnx file")
        return 2
    manifest_path = _manifest_path(args)
    return _import_file(
        src,
        Path(args.models_dir),
        manifest_path,
        args.name or src.stem,
        args.force,
        f"imported from {src.resolve()}",
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Download Ultralytics weights, export to ONNX, import the result."""
    try:
        from ultralytics import YOLO  # type: ignore[import-not-found]
    except ImportError:
        _err(
            "exporting needs the 'ultralytics' package (pip install "
            "'hallmonitor[ultralytics]'; it pulls torch), and internet access"
        )
        return 1
    manifest_path = _manifest_path(args)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model = YOLO(str(Path(tmp) / f"{args.name}.pt"))
            onnx_path = Path(model.export(format="onnx", imgsz=args.imgsz))
        except Exception as exc:  # noqa: BLE001 - download/export errors vary widely
            _err(
                f"export of {args.name!r} failed (no internet, or not an Ultralytics "
                f"model name?): {exc.__class__.__name__}: {str(exc)[:300]}"
            )
            return 1
        return _import_file(
            onnx_path,
            Path(args.models_dir),
            manifest_path,
            args.name,
            args.force,
            f"ultralytics export of {args.name}.pt (imgsz {args.imgsz})",
        )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``models`` command and its sub-commands to a CLI."""
    m = subparsers.add_parser("models", help="list, verify, import, export models")
    msub = m.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models-dir", default="models", help="model weights directory")
        p.add_argument(
            "--manifest",
            help="manifest file (default: <models-dir>/manifest.yaml, else the "
            "repository's models/manifest.yaml)",
        )

    p = msub.add_parser("list", help="list known models and whether files are present")
    common(p)
    p.set_defaults(func=cmd_list)

    p = msub.add_parser("verify", help="check model files against their sha256")
    p.add_argument("names", nargs="*", metavar="NAME", help="models (default: all)")
    common(p)
    p.set_defaults(func=cmd_verify)

    p = msub.add_parser(
        "import", help="check an .onnx model loads, copy it into the models directory"
    )
    p.add_argument("path", metavar="PATH", help=".onnx file")
    p.add_argument("--name", help="manifest name (default: file stem)")
    p.add_argument("--force", action="store_true", help="overwrite a different file")
    common(p)
    p.set_defaults(func=cmd_import)

    p = msub.add_parser(
        "export", help="download an Ultralytics model and export it to ONNX"
    )
    p.add_argument("name", metavar="NAME", help="Ultralytics model, e.g. yolo11n")
    p.add_argument("--imgsz", type=int, default=640, help="input size (default 640)")
    p.add_argument("--force", action="store_true", help="overwrite a different file")
    common(p)
    p.set_defaults(func=cmd_export)

"""ONNX Runtime object detector for YOLOv8/YOLO11, YOLOv5 and YOLOX exports.

The model format is never guessed silently. It comes, in this order, from

1. the models manifest entry (``models/manifest.yaml``: ``format`` and preprocessing);
2. Ultralytics metadata in the model (``names``, ``imgsz``): output ``[B, 4+nc, N]`` is
   YOLOv8/YOLO11, output ``[B, N, 5+nc]`` is YOLOv5;
3. the output shape alone: ``[B, N, 5+nc]`` with ``N`` = one cell per stride-8/16/32
   grid cell is YOLOX (anchor-free raw grid outputs), ``N`` = three per cell is YOLOv5
   (three anchors), ``[B, 4+nc, N]`` with ``N`` = one per cell is YOLOv8.

Anything else raises :class:`DetectorError` naming the file, its inputs, outputs and
metadata keys.

Preprocessing (letterbox) and postprocessing (decode, thresholds, class-aware NMS,
rescale, class and area filters) are vectorised NumPy/OpenCV. Bad frames: ``None``, a
non-array, an empty array, a wrong rank or channel count or a non-uint8 dtype raise
:class:`DetectorError` (the worker counts it as a failed frame); grey ``(H, W)`` /
``(H, W, 1)`` and BGRA ``(H, W, 4)`` frames are converted to BGR; non-finite model
outputs are dropped, so NaN-producing content yields fewer (or no) boxes.
"""

from __future__ import annotations

import ast
import enum
import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import yaml

from config.base import COCO_CLASSES
from config.detector import DetectorConfig
from monitor.letterbox import LetterboxInfo, letterbox_blob_into, unletterbox
from monitor.nms import batched_nms
from monitor.types import Detections

__all__ = [
    "DetectorError",
    "ModelFormat",
    "ModelSpec",
    "OnnxDetector",
    "default_manifest_path",
    "file_sha256",
    "load_detector",
    "read_manifest",
    "resolve_model",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STRIDES: tuple[int, ...] = (8, 16, 32)
_COCO_INDEX = {name: i for i, name in enumerate(COCO_CLASSES)}


class DetectorError(Exception):
    """A model or a frame the detector cannot use; the message says what was found."""


class ModelFormat(enum.StrEnum):
    """Output conventions the decoder understands."""

    YOLOV8 = "yolov8"  # [B, 4+nc, N]: cx, cy, w, h, class scores (also YOLO11)
    YOLOV5 = "yolov5"  # [B, N, 5+nc]: decoded cx, cy, w, h, objectness, class scores
    YOLOX = "yolox"  # [B, N, 5+nc]: raw grid offsets, log-size, objectness, classes


_DEFAULTS: dict[ModelFormat, dict[str, Any]] = {
    # Ultralytics: RGB scaled to 0-1, centred letterbox
    ModelFormat.YOLOV8: {"rgb": True, "scale": 1 / 255, "centred": True},
    ModelFormat.YOLOV5: {"rgb": True, "scale": 1 / 255, "centred": True},
    # YOLOX (Megvii): BGR 0-255, top-left padding
    ModelFormat.YOLOX: {"rgb": False, "scale": 1.0, "centred": False},
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a model and decode its output.

    Attributes:
        format: Output convention.
        input_name: Name of the image input.
        output_name: Name of the detection output.
        input_size: ``(width, height)`` of the network input.
        batch: Fixed batch size of the model, or ``None`` when dynamic.
        rgb: Feed RGB (else BGR).
        scale: Multiply uint8 pixels by this (``1/255`` or ``1``).
        centred: Centred letterbox (else top-left).
        pad_value: Letterbox grey level.
        class_names: Model class names, index == model class id.
        names_source: Where ``class_names`` came from (for logs and ``models list``).
        input_dtype: NumPy dtype of the input tensor.
    """

    format: ModelFormat
    input_name: str
    output_name: str
    input_size: tuple[int, int]
    batch: int | None
    rgb: bool
    scale: float
    centred: bool
    pad_value: int
    class_names: tuple[str, ...]
    names_source: str
    input_dtype: type[np.floating[Any]] = np.float32


# --------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_manifest_path() -> Path:
    """The manifest shipped with the repository (``models/manifest.yaml``)."""
    return ROOT / "models" / "manifest.yaml"


def read_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """Model entries of a manifest file, keyed by name.

    Raises:
        DetectorError: The file is missing, is not YAML, or has no ``models`` mapping.
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DetectorError(f"cannot read models manifest {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DetectorError(f"models manifest {p} is not valid YAML: {exc}") from exc
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        raise DetectorError(f"models manifest {p} has no 'models:' mapping")
    for name, entry in models.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise DetectorError(
                f"models manifest {p}: entry {name!r} needs at least a 'file:' name"
            )
    return {str(k): v for k, v in models.items()}


def _manifest_for(models_dir: Path) -> Path:
    local = models_dir / "manifest.yaml"
    return local if local.is_file() else default_manifest_path()


def resolve_model(cfg: DetectorConfig) -> tuple[Path, dict[str, Any] | None, str]:
    """Find the model file ``cfg.model`` names.

    A manifest name resolves to ``cfg.models_dir/<file>`` (manifest: the one in
    ``models_dir`` if present, else the repository's). Anything ending in ``.onnx`` or
    naming an existing file is a path (its manifest entry, if one has the same file
    name, still supplies the preprocessing).

    Returns:
        ``(path, manifest entry or None, model name)``.

    Raises:
        DetectorError: Unknown name or missing file.
    """
    models_dir = Path(cfg.models_dir)
    manifest_path = _manifest_for(models_dir)
    manifest = read_manifest(manifest_path) if manifest_path.is_file() else {}
    as_path = Path(cfg.model)
    if cfg.model in manifest and not cfg.model.endswith(".onnx"):
        entry = manifest[cfg.model]
        path = models_dir / entry["file"]
        if not path.is_file():
            raise DetectorError(
                f"model {cfg.model!r}: file {path} not found (models_dir "
                f"{models_dir}); copy it there with `hallmonitor models import PATH`"
            )
        return path, entry, cfg.model
    if cfg.model.endswith(".onnx") or as_path.is_file():
        path = as_path if as_path.is_absolute() else models_dir / as_path
        if not path.is_file() and as_path.is_file():
            path = as_path
        if not path.is_file():
            raise DetectorError(f"model file {cfg.model} not found")
        for name, entry in manifest.items():
            if entry["file"] == path.name:
                return path, entry, name
        return path, None, path.stem
    known = ", ".join(sorted(manifest)) or "none"
    raise DetectorError(
        f"unknown model {cfg.model!r}: not in manifest {manifest_path} "
        f"(known: {known}) and not an .onnx path"
    )


# --------------------------------------------------------------------- inspection


def _dim(d: Any) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _grid_cells(w: int, h: int) -> int:
    return sum((h // s) * (w // s) for s in STRIDES)


def _parse_names(raw: str | None) -> tuple[str, ...] | None:
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):
        try:
            return tuple(str(names[i]) for i in range(len(names)))
        except KeyError:
            return None
    if isinstance(names, list | tuple):
        return tuple(str(n) for n in names)
    return None


def _parse_imgsz(raw: Any) -> tuple[int, int] | None:
    """``(w, h)`` from Ultralytics ``imgsz`` metadata (``[h, w]``) or a manifest value."""
    val = raw
    if isinstance(raw, str):
        try:
            val = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
    if isinstance(val, int):
        return (val, val)
    if isinstance(val, list | tuple) and len(val) == 2:
        return (int(val[1]), int(val[0]))
    return None


def _manifest_size(raw: Any) -> tuple[int, int] | None:
    """``(w, h)`` from a manifest ``input_size`` (``[width, height]`` or one int)."""
    if isinstance(raw, int):
        return (raw, raw)
    if isinstance(raw, list | tuple) and len(raw) == 2:
        return (int(raw[0]), int(raw[1]))
    return None


def _describe(session: ort.InferenceSession, meta: Mapping[str, str]) -> str:
    ins = ", ".join(f"{i.name} {i.type} {i.shape}" for i in session.get_inputs())
    outs = ", ".join(f"{o.name} {o.type} {o.shape}" for o in session.get_outputs())
    keys = ", ".join(sorted(meta)) or "none"
    return f"inputs [{ins}], outputs [{outs}], metadata keys [{keys}]"


def inspect_session(
    session: ort.InferenceSession,
    path: Path,
    entry: Mapping[str, Any] | None = None,
    input_size: int | None = None,
) -> ModelSpec:
    """Work out a model's format and preprocessing from its graph, metadata, manifest.

    Args:
        session: Loaded session.
        path: Model file (for messages).
        entry: Manifest entry, if any.
        input_size: Requested square input (only for models with a dynamic input).

    Raises:
        DetectorError: The model matches no supported format; the message lists what
            was found.
    """
    meta = dict(session.get_modelmeta().custom_metadata_map or {})
    what = f"{path}: {_describe(session, meta)}"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise DetectorError(f"unsupported model (expected one image input) {what}")
    inp, out = inputs[0], outputs[0]
    if len(inp.shape) != 4 or _dim(inp.shape[1]) not in (3, None):
        raise DetectorError(f"unsupported model (expected NCHW 3-channel input) {what}")
    dtypes: dict[str, type[np.floating[Any]]] = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
    }
    if inp.type not in dtypes:
        raise DetectorError(f"unsupported input type {inp.type} {what}")
    if len(out.shape) != 3:
        raise DetectorError(f"unsupported model (expected a rank-3 output) {what}")
    entry = dict(entry or {})

    # --- input size
    fixed_h, fixed_w = _dim(inp.shape[2]), _dim(inp.shape[3])
    if fixed_h and fixed_w:
        size = (fixed_w, fixed_h)
        if input_size is not None and (input_size, input_size) != size:
            raise DetectorError(
                f"{path}: model input is fixed at {size[0]}x{size[1]}, "
                f"config asks for input_size {input_size}"
            )
    else:
        size = (
            (input_size, input_size)
            if input_size
            else _manifest_size(entry.get("input_size"))
            or _parse_imgsz(meta.get("imgsz"))
            or (640, 640)
        )
    if size[0] % 32 or size[1] % 32:
        raise DetectorError(f"{path}: input size {size} is not a multiple of 32 {what}")
    cells = _grid_cells(*size)

    # --- format
    d1, d2 = _dim(out.shape[1]), _dim(out.shape[2])
    names = _parse_names(meta.get("names"))
    declared = entry.get("format")
    fmt: ModelFormat | None = None
    if declared is not None:
        try:
            fmt = ModelFormat(str(declared).lower())
        except ValueError:
            raise DetectorError(
                f"{path}: manifest format {declared!r} is not one of "
                f"{[f.value for f in ModelFormat]}"
            ) from None
    else:
        fits: list[ModelFormat] = []
        if names is not None:
            nc = len(names)
            if d1 == 4 + nc:
                fits.append(ModelFormat.YOLOV8)
            if d2 == 5 + nc:
                fits.append(ModelFormat.YOLOV5)
        else:
            if d2 is not None and d2 > 5 and d1 == cells:
                fits.append(ModelFormat.YOLOX)
            if d2 is not None and d2 > 5 and d1 == 3 * cells:
                fits.append(ModelFormat.YOLOV5)
            if d1 is not None and d1 > 4 and d2 == cells:
                fits.append(ModelFormat.YOLOV8)
        if len(fits) > 1:
            raise DetectorError(
                f"ambiguous model format: output fits {[f.value for f in fits]}; "
                f"declare 'format' in the models manifest {what}"
            )
        fmt = fits[0] if fits else None
    if fmt is None:
        raise DetectorError(
            f"unknown model format (not YOLOv8/YOLO11 [B,4+nc,{cells}], YOLOv5 "
            f"[B,{3 * cells},5+nc] or YOLOX [B,{cells},5+nc] at input "
            f"{size[0]}x{size[1]}) {what}"
        )

    # --- class count, shape consistency
    if fmt is ModelFormat.YOLOV8:
        nc = (d1 or 0) - 4
        ok = nc > 0 and d2 in (None, cells)
    else:
        nc = (d2 or 0) - 5
        if fmt is ModelFormat.YOLOX:
            ok = nc > 0 and d1 in (None, cells)
        elif declared is not None:
            # declared YOLOv5-style decoded output: any row count (other anchor
            # layouts, YOLOX exported with decode_in_inference)
            ok = nc > 0
        else:
            ok = nc > 0 and d1 in (None, 3 * cells)
    if not ok:
        raise DetectorError(
            f"output shape {out.shape} does not fit format {fmt.value} at input "
            f"{size[0]}x{size[1]} {what}"
        )

    # --- class names: metadata, manifest, else COCO-80 when the count says so
    if names is not None:
        source = "model metadata"
    elif isinstance(entry.get("class_names"), list):
        names, source = tuple(map(str, entry["class_names"])), "manifest"
    elif nc == len(COCO_CLASSES):
        names, source = COCO_CLASSES, "COCO-80 (80 classes, no names in model)"
        log.info("%s: no class names in the model; 80 classes -> COCO-80", path.name)
    else:
        raise DetectorError(
            f"{path}: {nc} classes and no class names (model metadata 'names' or "
            f"manifest 'class_names') {what}"
        )
    if len(names) != nc:
        raise DetectorError(
            f"{path}: {len(names)} class names ({source}) but the output has {nc} "
            f"classes {what}"
        )

    d = _DEFAULTS[fmt]
    colour = str(entry.get("colour", "rgb" if d["rgb"] else "bgr")).lower()
    padding = str(entry.get("padding", "centre" if d["centred"] else "top_left"))
    norm = str(entry.get("normalisation", "0-1" if d["scale"] != 1.0 else "none"))
    if colour not in ("rgb", "bgr") or padding not in ("centre", "top_left"):
        raise DetectorError(
            f"{path}: manifest colour {colour!r} / padding {padding!r} must be "
            "rgb|bgr / centre|top_left"
        )
    if norm not in ("0-1", "none"):
        raise DetectorError(f"{path}: manifest normalisation {norm!r} must be 0-1|none")
    return ModelSpec(
        format=fmt,
        input_name=inp.name,
        output_name=out.name,
        input_size=size,
        batch=_dim(inp.shape[0]),
        rgb=colour == "rgb",
        scale=1 / 255 if norm == "0-1" else 1.0,
        centred=padding == "centre",
        pad_value=int(entry.get("pad_value", 114)),
        class_names=names,
        names_source=source,
        input_dtype=dtypes[inp.type],
    )


# --------------------------------------------------------------------- frames


def _as_bgr(image: Any, index: int | None = None) -> npt.NDArray[np.uint8]:
    """Validate one frame; grey and BGRA become BGR. Raises DetectorError."""
    where = "image" if index is None else f"image {index}"
    if image is None:
        raise DetectorError(f"{where} is None")
    if not isinstance(image, np.ndarray):
        raise DetectorError(
            f"{where} must be a numpy array, got {type(image).__name__}"
        )
    if image.size == 0:
        raise DetectorError(f"{where} is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise DetectorError(
            f"{where} must be uint8, got dtype {image.dtype} shape {image.shape}"
        )
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
        return cast("npt.NDArray[np.uint8]", grey)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DetectorError(
            f"{where} must be (H, W, 3) BGR (or grey / BGRA), got shape {image.shape}"
        )
    if image.shape[2] == 4:
        bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGRA2BGR)
        return cast("npt.NDArray[np.uint8]", bgr)
    if image.strides[1] != 3 or image.strides[2] != 1:
        # channel-reversed or otherwise strided views: OpenCV needs packed pixels
        image = np.ascontiguousarray(image)
    return image


# --------------------------------------------------------------------- detector


class OnnxDetector:
    """One ONNX Runtime session plus vectorised pre/postprocessing.

    Thread safety: calls are serialised by a lock (the preallocated input buffers are
    shared); run one detector per process and batch frames instead of threading.

    Attributes:
        class_names: Model class names, index == model class id.
        model_sha256: Hex sha256 of the ``.onnx`` file.
        model_name: Manifest name, or the file stem.
        input_size: ``(width, height)`` of the network input.
        spec: The detected format and preprocessing.
    """

    def __init__(
        self,
        path: str | Path,
        cfg: DetectorConfig | None = None,
        *,
        manifest_entry: Mapping[str, Any] | None = None,
        name: str | None = None,
        warmup: int = 2,
    ) -> None:
        """Load, inspect and warm up a model.

        Args:
            path: The ``.onnx`` file.
            cfg: Thresholds, classes, threads (defaults if ``None``).
            manifest_entry: Manifest entry for the file, if any.
            name: Model name (default: file stem).
            warmup: Inference runs at load, so the first frame is not slow.

        Raises:
            DetectorError: Missing, corrupt or unsupported model.
        """
        self.cfg = cfg or DetectorConfig()
        self.path = Path(path)
        if not self.path.is_file():
            raise DetectorError(f"model file {self.path} not found")
        self.model_sha256 = file_sha256(self.path)
        self.model_name = name or self.path.stem
        self.session = self._open_session()
        self.spec = inspect_session(
            self.session, self.path, manifest_entry, self.cfg.input_size
        )
        self.class_names: tuple[str, ...] = self.spec.class_names
        self.input_size: tuple[int, int] = self.spec.input_size
        self._lock = threading.Lock()
        # batches: a single-threaded session run from a pool (created on first use)
        self._solo: ort.InferenceSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._build_tables()
        self._blob = np.empty(
            (0, 3, self.input_size[1], self.input_size[0]), np.float32
        )
        self.last_timing: dict[str, float] = {}
        self._warmup(warmup)
        log.info(
            "detector %s (%s, %dx%d, %d classes from %s, sha256 %s) ready",
            self.model_name,
            self.spec.format.value,
            *self.input_size,
            len(self.class_names),
            self.spec.names_source,
            self.model_sha256[:12],
        )

    # ----------------------------------------------------------------- setup
    def _open_session(self, threads: int | None = None) -> ort.InferenceSession:
        so = ort.SessionOptions()
        # A single frame gets all threads (lowest latency); batches use a
        # one-thread session per frame, see _infer.
        so.intra_op_num_threads = threads or self.cfg.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between operators: alone it is ~30 % faster (YOLOX-Nano
        # 9.9 vs 13.4 ms on 2 cores) but on cores shared with decoders and other
        # cameras the spinning threads starve them (147 vs 53 ms per frame at load 10,
        # 36 vs 20 ms CPU per frame); see docs/detector.md.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # ORT warnings go to stderr, not our logs
        try:
            return ort.InferenceSession(
                str(self.path), so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises several private types
            size = self.path.stat().st_size
            raise DetectorError(
                f"cannot load ONNX model {self.path} ({size} bytes, sha256 "
                f"{self.model_sha256[:12]}): {str(exc).strip()[:300]}"
            ) from exc

    def _build_tables(self) -> None:
        spec, cfg = self.spec, self.cfg
        nc = len(spec.class_names)
        # model class id -> COCO id (-1: not a COCO name, never kept)
        self._to_coco = np.array(
            [_COCO_INDEX.get(n, -1) for n in spec.class_names], np.int64
        )
        # per model class score threshold; inf = class filtered out
        thr = np.full(nc, np.inf, np.float32)
        for i, n in enumerate(spec.class_names):
            if n in cfg.classes:
                thr[i] = cfg.class_thresholds.get(n, cfg.score_threshold)
        if not np.isfinite(thr).any():
            log.warning(
                "detector %s: none of the configured classes %s is a model class",
                self.model_name,
                cfg.classes,
            )
        self._thr = thr
        self._thr_min = float(thr.min()) if np.isfinite(thr).any() else np.inf
        if spec.format is ModelFormat.YOLOX:
            w, h = spec.input_size
            grids, strides = [], []
            for s in STRIDES:
                ys, xs = np.meshgrid(
                    np.arange(h // s), np.arange(w // s), indexing="ij"
                )
                grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
                strides.append(np.full(xs.size, s))
            self._grid = np.concatenate(grids).astype(np.float32)  # (N, 2)
            self._stride = np.concatenate(strides).astype(np.float32)  # (N,)

    def _warmup(self, runs: int) -> None:
        if runs <= 0:
            return
        w, h = self.input_size
        grey = np.full((h, w, 3), 114, np.uint8)
        try:
            for _ in range(runs):
                self.detect(grey)
            if self.cfg.threads > 1:  # the batch path's session and threads too
                self.detect_batch([grey] * self.cfg.threads)
        except DetectorError:
            raise
        except Exception as exc:  # noqa: BLE001 - surface as a model problem
            raise DetectorError(
                f"model {self.path} fails on a test input: {str(exc).strip()[:300]}"
            ) from exc

    # ----------------------------------------------------------------- public
    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        """Detect objects in one frame.

        Args:
            image: ``(H, W, 3)`` uint8 BGR (grey ``(H, W)``/``(H, W, 1)`` and BGRA
                ``(H, W, 4)`` are converted).

        Returns:
            Detections in original pixels, kept classes only, highest score first.

        Raises:
            DetectorError: ``None``, empty, wrong rank/channels or non-uint8 input.
        """
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect objects in several frames (or crops) of any sizes.

        Frames are letterboxed into one ``(B, 3, h, w)`` tensor. With ``threads`` > 1
        the frames (chunks of the model's fixed batch size, or ``B / threads`` frames
        for a dynamic batch dimension) run concurrently on a one-thread session;
        with 1 thread they run one after the other.

        Args:
            images: Frames as for :meth:`detect`.

        Returns:
            One Detections per input frame, in order.

        Raises:
            DetectorError: Any frame is unusable (the message names its index).
        """
        if len(images) == 0:
            return []
        frames = [
            _as_bgr(im, i if len(images) > 1 else None) for i, im in enumerate(images)
        ]
        with self._lock:
            t0 = time.perf_counter()
            blob, infos = self._preprocess(frames)
            t1 = time.perf_counter()
            raw = self._infer(blob)
            t2 = time.perf_counter()
            out = [self._postprocess(raw[i], infos[i]) for i in range(len(frames))]
            t3 = time.perf_counter()
            self.last_timing = {
                "pre_ms": (t1 - t0) * 1e3,
                "infer_ms": (t2 - t1) * 1e3,
                "post_ms": (t3 - t2) * 1e3,
            }
        return out

    # ----------------------------------------------------------------- stages
    def _preprocess(
        self, frames: list[npt.NDArray[np.uint8]]
    ) -> tuple[npt.NDArray[np.floating[Any]], list[LetterboxInfo]]:
        """Letterbox every frame into the reused ``(B, 3, h, w)`` input buffer."""
        b = len(frames)
        if self._blob.shape[0] < b:
            w, h = self.input_size
            self._blob = np.empty((b, 3, h, w), self.spec.input_dtype)
        blob = self._blob[:b]
        s = self.spec
        infos = [
            letterbox_blob_into(f, blob[i], s.centred, s.rgb, s.scale, s.pad_value)
            for i, f in enumerate(frames)
        ]
        return blob, infos

    def _run(
        self, session: ort.InferenceSession, chunk: npt.NDArray[np.floating[Any]]
    ) -> npt.NDArray[np.float32]:
        n, step = chunk.shape[0], self.spec.batch or chunk.shape[0]
        if n < step:  # fixed batch > 1: pad the last chunk
            pad = np.zeros((step - n, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        res = session.run([self.spec.output_name], {self.spec.input_name: chunk})[0]
        return np.asarray(res, np.float32)[:n]

    def _infer(self, blob: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Run ``(B, 3, h, w)``; several frames run concurrently when threads > 1."""
        b = blob.shape[0]
        workers = self.cfg.threads
        if b == 1 or workers == 1:
            step = self.spec.batch or b
            outs = [
                self._run(self.session, blob[i : i + step]) for i in range(0, b, step)
            ]
        else:
            # Several frames: one single-threaded run per frame (or chunk), ``threads``
            # at a time, instead of splitting each run over threads. Intra-op
            # parallelism costs ~50 % extra CPU on these small models; frame-level
            # parallelism does not (docs/detector.md, frames/s table).
            step = self.spec.batch or -(-b // workers)
            chunks = [blob[i : i + step] for i in range(0, b, step)]
            solo = self._solo_session()
            outs = list(self._pool().map(lambda c: self._run(solo, c), chunks))
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def _solo_session(self) -> ort.InferenceSession:
        if self._solo is None:
            self._solo = self._open_session(threads=1)
        return self._solo

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.cfg.threads, thread_name_prefix=f"detector-{self.model_name}"
            )
        return self._executor

    def close(self) -> None:
        """Stop the batch thread pool (the detector stays usable for single frames)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _postprocess(
        self, out: npt.NDArray[np.float32], info: LetterboxInfo
    ) -> Detections:
        """Decode one image's raw output into Detections in original pixels.

        Args:
            out: ``(4+nc, N)`` for YOLOv8, ``(N, 5+nc)`` for YOLOv5/YOLOX.
            info: Letterbox placement of the image.
        """
        fmt = self.spec.format
        thr_min = self._thr_min
        with np.errstate(invalid="ignore", over="ignore"):
            if fmt is ModelFormat.YOLOV8:
                best = out[4:].max(axis=0)  # (N,)
                idx = np.flatnonzero(best >= thr_min)
                rows = out[:, idx].T  # (K, 4+nc)
                cls = rows[:, 4:]
                boxes = rows[:, :4]
            else:
                # score = obj * class <= obj: cheap first cut on objectness
                idx = np.flatnonzero(out[:, 4] >= thr_min)
                rows = out[idx]
                cls = rows[:, 5:] * rows[:, 4:5]
                boxes = rows[:, :4]
                if fmt is ModelFormat.YOLOX:
                    s = self._stride[idx, None]
                    boxes = np.concatenate(
                        [
                            (boxes[:, :2] + self._grid[idx]) * s,
                            np.exp(boxes[:, 2:]) * s,
                        ],
                        axis=1,
                    )
            cid = cls.argmax(axis=1)
            score = cls[np.arange(len(cid)), cid]
            xyxy = np.concatenate(
                [boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2],
                axis=1,
            )
            keep = (
                (score >= self._thr[cid])
                & np.isfinite(score)
                & np.isfinite(xyxy).all(axis=1)
            )
        if not keep.any():
            return Detections.empty()
        xyxy, score, cid = xyxy[keep], score[keep], cid[keep]
        order = batched_nms(xyxy, score, cid, self.cfg.nms_iou)
        xyxy = unletterbox(xyxy[order], info)
        score, cid = score[order], cid[order]
        w0, h0 = info.orig_wh
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        ok = (
            (area >= self.cfg.min_area_px)
            & (area <= self.cfg.max_area_frac * w0 * h0)
            & (area > 0)
        )
        return Detections(
            xyxy=xyxy[ok],
            confidence=np.clip(score[ok], 0.0, 1.0).astype(np.float32),
            class_id=self._to_coco[cid[ok]],
        )


def load_detector(cfg: DetectorConfig) -> OnnxDetector:
    """Load the detector ``cfg`` describes.

    ``cfg.model`` is a manifest name (file under ``cfg.models_dir``, sha256-checked
    when ``cfg.verify_sha256``) or a path to an ``.onnx`` file.

    Raises:
        DetectorError: Unknown name, missing/corrupt/unsupported file, checksum
            mismatch.
    """
    path, entry, name = resolve_model(cfg)
    if entry is not None and cfg.verify_sha256 and entry.get("sha256"):
        actual = file_sha256(path)
        if actual != str(entry["sha256"]).lower():
            raise DetectorError(
                f"model {name!r}: {path} has sha256 {actual}, manifest says "
                f"{entry['sha256']} (wrong or corrupt file; set verify_sha256: false "
                "to run it anyway)"
            )
    return OnnxDetector(path, cfg, manifest_entry=entry, name=name)

"""Tiny synthetic ONNX detectors for the detector unit tests (built with ``onnx``).

Each model returns a constant prediction tensor ``C`` plus two image-dependent terms:
``log(mean(x)) * 0`` (NaN for an all-black input: 0 * -inf) and ``mean(x) * D`` (moves
chosen values with image brightness, so batch order is observable). They run in the
real onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

STRIDES = (8, 16, 32)


def cells(w: int, h: int) -> int:
    """Grid cells over strides 8/16/32."""
    return sum((h // s) * (w // s) for s in STRIDES)


def build_model(
    path: Path,
    const: np.ndarray,
    *,
    input_shape: tuple[Any, ...] = ("batch", 3, 64, 64),
    drift: np.ndarray | None = None,
    metadata: dict[str, str] | None = None,
    output_shape: tuple[Any, ...] | None = None,
    two_inputs: bool = False,
) -> Path:
    """Write an ONNX model computing ``C + log(mean x) * 0 + mean(x) * D``.

    Args:
        path: Where to write the ``.onnx`` file.
        const: ``(R, K)`` constant prediction (one image's output).
        input_shape: Declared NCHW input shape (strings are symbolic dims).
        drift: ``(R, K)`` per-unit-brightness change (default zeros).
        metadata: Custom metadata (e.g. Ultralytics ``names``).
        output_shape: Declared output shape (default ``(batch, R, K)``).
        two_inputs: Add a second (unused) input, which no detector format has.
    """
    const = np.asarray(const, np.float32)[None]
    drift = (
        np.zeros_like(const) if drift is None else np.asarray(drift, np.float32)[None]
    )
    inits = [
        numpy_helper.from_array(const, "C"),
        numpy_helper.from_array(drift, "D"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "ax12"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m4"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m4", "ax12"], ["m"]),  # (B, 1, 1)
        helper.make_node("Log", ["m"], ["logm"]),
        helper.make_node("Mul", ["logm", "zero"], ["nan_or_zero"]),
        helper.make_node("Mul", ["m", "D"], ["moved"]),
        helper.make_node("Add", ["C", "nan_or_zero"], ["c1"]),
        helper.make_node("Add", ["c1", "moved"], ["output"]),
    ]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    out_shape = output_shape or ("batch", *const.shape[1:])
    graph = helper.make_graph(
        nodes,
        "synthetic",
        inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    path.write_bytes(model.SerializeToString())
    return path


def yolov5_rows(
    n: int, nc: int, boxes: list[tuple[float, float, float, float, float, int, float]]
) -> np.ndarray:
    """``(n, 5+nc)`` YOLOv5 prediction; each box is ``cx, cy, w, h, obj, class, p``."""
    out = np.zeros((n, 5 + nc), np.float32)
    for i, (cx, cy, w, h, obj, c, p) in enumerate(boxes):
        out[i, :5] = (cx, cy, w, h, obj)
        out[i, 5 + c] = p
    return out


# ---------------------------------------------------------------------- tests
# (the builders above are also used by test_detector.py and test_detector_cli.py)

import math  # noqa: E402

from config.base import COCO_CLASSES  # noqa: E402
from config.detector import DetectorConfig  # noqa: E402
from monitor.detector import DetectorError, ModelFormat, OnnxDetector  # noqa: E402

N64 = cells(64, 64)  # 84 grid cells at 64x64
ALL = DetectorConfig(classes=COCO_CLASSES, score_threshold=0.3)


def _white(w: int = 64, h: int = 64) -> np.ndarray:
    return np.full((h, w, 3), 255, np.uint8)


def yolox_rows(n: int, nc: int, index: int, raw: tuple[float, ...]) -> np.ndarray:
    out = np.zeros((n, 5 + nc), np.float32)
    out[index, : len(raw)] = raw
    return out


@pytest.mark.parametrize(
    ("image_wh", "expected_xyxy"),
    [
        ((64, 64), [22, 22, 42, 42]),
        # 128x64 -> scale 0.5, centred: 16 px pad top and bottom
        ((128, 64), [44, 12, 84, 52]),
        # 32x64 (portrait) -> scale 1, centred: 16 px pad left and right
        ((32, 64), [6, 22, 26, 42]),
    ],
)
def test_yolov5_detected_by_shape_and_decoded(
    tmp_path: Path, image_wh: tuple[int, int], expected_xyxy: list[float]
) -> None:
    const = yolov5_rows(3 * N64, 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    det = OnnxDetector(build_model(tmp_path / "v5.onnx", const), ALL)
    assert det.spec.format is ModelFormat.YOLOV5
    assert det.spec.rgb and det.spec.centred and math.isclose(det.spec.scale, 1 / 255)
    assert det.class_names == COCO_CLASSES
    out = det.detect(_white(*image_wh))
    assert len(out) == 1
    np.testing.assert_allclose(out.xyxy[0], expected_xyxy, atol=1e-3)
    assert out.confidence[0] == pytest.approx(0.81, abs=1e-5)
    assert out.class_id.tolist() == [0]


def test_yolov5_with_names_maps_to_coco_ids(tmp_path: Path) -> None:
    """A 3-class model: its class 1 'car' is COCO id 2; 'dog' is not a kept class."""
    const = yolov5_rows(
        3 * N64,
        3,
        [(10, 10, 8, 8, 1.0, 1, 0.9), (40, 40, 8, 8, 1.0, 2, 0.9)],
    )
    path = build_model(
        tmp_path / "v5n.onnx",
        const,
        metadata={"names": "{0: 'person', 1: 'car', 2: 'dog'}"},
    )
    det = OnnxDetector(path)  # default classes: person..truck
    assert det.spec.format is ModelFormat.YOLOV5
    assert det.class_names == ("person", "car", "dog")
    assert det.spec.names_source == "model metadata"
    out = det.detect(_white())
    assert out.class_id.tolist() == [2]


@pytest.mark.parametrize(
    ("image_wh", "expected_xyxy"),
    [
        ((64, 64), [20, 4, 36, 36]),
        # top-left padding: a 64x32 frame sits at (0, 0), box clipped to h=32
        ((64, 32), [20, 4, 36, 32]),
        # 128x128 -> scale 0.5, no offset
        ((128, 128), [40, 8, 72, 72]),
    ],
)
def test_yolox_detected_by_shape_and_grid_decoded(
    tmp_path: Path, image_wh: tuple[int, int], expected_xyxy: list[float]
) -> None:
    # stride-8 cell (gx=3, gy=2) is row 2*8+3; w = e^log2 * 8, h = e^log4 * 8
    raw = (0.5, 0.5, math.log(2), math.log(4), 0.9, 0.8)
    det = OnnxDetector(
        build_model(tmp_path / "x.onnx", yolox_rows(N64, 80, 19, raw)), ALL
    )
    assert det.spec.format is ModelFormat.YOLOX
    assert not det.spec.rgb and not det.spec.centred and det.spec.scale == 1.0
    out = det.detect(_white(*image_wh))
    assert len(out) == 1
    np.testing.assert_allclose(out.xyxy[0], expected_xyxy, atol=1e-3)
    assert out.confidence[0] == pytest.approx(0.72, abs=1e-5)


def test_yolox_feeds_raw_0_255_and_yolov5_feeds_0_1(tmp_path: Path) -> None:
    """Input scaling is observable: the box centre moves by 0.1 * mean(input)."""
    drift = np.zeros((N64, 85), np.float32)
    drift[19, 0] = 0.1 / 8  # raw cx offset, times stride 8 -> 0.1 px per unit
    raw = (0.5, 0.5, math.log(2), math.log(4), 0.9, 0.8)
    det = OnnxDetector(
        build_model(tmp_path / "x.onnx", yolox_rows(N64, 80, 19, raw), drift=drift),
        ALL,
    )
    x1 = det.detect(_white()).xyxy[0, 0]
    assert x1 == pytest.approx(20 + 25.5, abs=1e-3)  # mean 255
    v5_drift = np.zeros((3 * N64, 85), np.float32)
    v5_drift[0, 0] = 10.0
    const = yolov5_rows(3 * N64, 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    v5 = OnnxDetector(build_model(tmp_path / "v5.onnx", const, drift=v5_drift), ALL)
    assert v5.detect(_white()).xyxy[0, 0] == pytest.approx(22 + 10.0, abs=1e-3)


@pytest.mark.parametrize("with_names", [False, True])
def test_yolov8_detected(tmp_path: Path, with_names: bool) -> None:
    nc = 3 if with_names else 80
    n = cells(128, 128)  # at 64x64, 84 cells == 4 + 80 would be ambiguous
    const = np.zeros((4 + nc, n), np.float32)
    const[:4, 5] = (64, 64, 10, 30)
    const[4 + 0, 5] = 0.7
    meta = {"names": str(dict(enumerate(COCO_CLASSES[:3])))} if with_names else None
    path = build_model(
        tmp_path / "v8.onnx", const, metadata=meta, input_shape=(1, 3, 128, 128)
    )
    det = OnnxDetector(path, ALL)
    assert det.spec.format is ModelFormat.YOLOV8
    assert len(det.class_names) == nc
    out = det.detect(_white(128, 128))
    np.testing.assert_allclose(out.xyxy, [[59, 49, 69, 79]], atol=1e-3)
    assert out.confidence.tolist() == pytest.approx([0.7])


def test_ambiguous_shape_is_refused_unless_declared(tmp_path: Path) -> None:
    """[B, 84, 84] at 64x64 is YOLOX with 79 classes or YOLOv8 with 80: no guess."""
    path = build_model(tmp_path / "amb.onnx", np.zeros((84, N64), np.float32))
    with pytest.raises(DetectorError, match=r"ambiguous model format.*yolox.*yolov8"):
        OnnxDetector(path)
    det = OnnxDetector(path, manifest_entry={"file": "amb.onnx", "format": "yolov8"})
    assert det.spec.format is ModelFormat.YOLOV8


@pytest.mark.parametrize(
    ("kwargs", "const", "message"),
    [
        ({}, np.zeros((7, 13)), "unknown model format"),
        ({"output_shape": ("batch", 7 * 13)}, np.zeros((7, 13)), "rank-3 output"),
        ({"two_inputs": True}, np.zeros((N64, 85)), "one image input"),
        ({"input_shape": (1, 1, 64, 64)}, np.zeros((N64, 85)), "3-channel"),
        # names say 3 classes, output has 80: neither v8 nor v5 layout
        (
            {"metadata": {"names": "['a', 'b', 'c']"}},
            np.zeros((N64, 85)),
            "unknown model format",
        ),
        # 80 classes at 64x64 but only 50 rows: no grid fits
        ({}, np.zeros((50, 85)), "unknown model format"),
        ({"input_shape": (1, 3, 60, 60)}, np.zeros((N64, 85)), "multiple of 32"),
    ],
)
def test_unsupported_models_name_what_was_found(
    tmp_path: Path, kwargs: dict[str, Any], const: np.ndarray, message: str
) -> None:
    path = build_model(tmp_path / "odd.onnx", const, **kwargs)
    with pytest.raises(DetectorError) as err:
        OnnxDetector(path)
    text = str(err.value)
    assert message in text
    assert "odd.onnx" in text
    if "unknown model format" in text:
        assert "outputs [output" in text and "metadata keys" in text


def test_yolox_without_grid_decode_hint_needs_80_classes(tmp_path: Path) -> None:
    """No names anywhere and not 80 classes: refuse rather than invent names."""
    with pytest.raises(DetectorError, match="no class names"):
        OnnxDetector(build_model(tmp_path / "x5.onnx", np.zeros((N64, 10))))


def test_manifest_format_must_fit_the_output(tmp_path: Path) -> None:
    const = np.zeros((84, cells(128, 128)), np.float32)  # YOLOv8 layout
    path = build_model(tmp_path / "v8.onnx", const, input_shape=(1, 3, 128, 128))
    with pytest.raises(DetectorError, match="does not fit format yolox"):
        OnnxDetector(path, manifest_entry={"file": "v8.onnx", "format": "yolox"})
    with pytest.raises(DetectorError, match="not one of"):
        OnnxDetector(path, manifest_entry={"file": "v8.onnx", "format": "ssd"})


def test_manifest_preprocessing_overrides_defaults(tmp_path: Path) -> None:
    const = yolov5_rows(3 * N64, 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    path = build_model(tmp_path / "v5.onnx", const)
    entry = {"file": "v5.onnx", "colour": "bgr", "padding": "top_left"}
    det = OnnxDetector(path, manifest_entry=entry)
    assert not det.spec.rgb and not det.spec.centred
    assert det.spec.format is ModelFormat.YOLOV5  # still detected from the shape


@pytest.mark.parametrize(
    "content", [b"", b"not an onnx model at all", b"\x08\x07" + bytes(range(256)) * 8]
)
def test_corrupt_model_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(DetectorError, match=r"cannot load ONNX model .*broken\.onnx"):
        OnnxDetector(path)


def test_truncated_model_file(tmp_path: Path) -> None:
    good = build_model(tmp_path / "good.onnx", np.zeros((3 * N64, 85)))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DetectorError, match="cut.onnx"):
        OnnxDetector(cut)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="not found"):
        OnnxDetector(tmp_path / "nope.onnx")


def test_dynamic_input_size_from_config(tmp_path: Path) -> None:
    const = yolov5_rows(3 * N64, 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    path = build_model(
        tmp_path / "dyn.onnx", const, input_shape=("batch", 3, "height", "width")
    )
    det = OnnxDetector(path, DetectorConfig(input_size=64))
    assert det.input_size == (64, 64)
    fixed = build_model(tmp_path / "fixed.onnx", const)
    with pytest.raises(DetectorError, match="fixed at 64x64"):
        OnnxDetector(fixed, DetectorConfig(input_size=128))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("input_batch", ["batch", 1, 2])
def test_detect_batch_matches_single_frames(
    tmp_path: Path, input_batch: Any, threads: int
) -> None:
    """Dynamic, fixed-1 and fixed-2 batch models give per-frame results in order,
    run sequentially (1 thread) or as concurrent chunks (2, 3 threads)."""
    drift = np.zeros((3 * N64, 85), np.float32)
    drift[0, 0] = 20.0  # box moves right with brightness
    const = yolov5_rows(3 * N64, 80, [(20, 32, 10, 10, 0.9, 0, 0.9)])
    path = build_model(
        tmp_path / "b.onnx",
        const,
        drift=drift,
        input_shape=(input_batch, 3, 64, 64),
        output_shape=(input_batch, 3 * N64, 85),
    )
    det = OnnxDetector(path, DetectorConfig(classes=COCO_CLASSES, threads=threads))
    assert det.spec.batch == (None if input_batch == "batch" else input_batch)
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (0 + 10, 128, 255)]
    frames.append(np.full((32, 96, 3), 200, np.uint8))
    batch = det.detect_batch(frames)
    assert len(batch) == len(frames)
    singles = [det.detect(f) for f in frames]
    for b, s in zip(batch, singles, strict=True):
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=1e-4)
    xs = [float(b.xyxy[0, 0]) for b in batch[:3]]
    assert xs[0] < xs[1] < xs[2]  # order preserved


def test_dynamic_input_size_from_manifest_is_width_height(tmp_path: Path) -> None:
    const = yolov5_rows(3 * cells(128, 64), 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    path = build_model(
        tmp_path / "dyn.onnx", const, input_shape=("batch", 3, "height", "width")
    )
    entry = {"file": "dyn.onnx", "input_size": [128, 64]}
    assert OnnxDetector(path, manifest_entry=entry).input_size == (128, 64)


def test_declared_yolov5_accepts_decoded_yolox_exports(tmp_path: Path) -> None:
    """A YOLOX export with decode_in_inference: decoded rows, one per grid cell."""
    const = yolov5_rows(N64, 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    path = build_model(tmp_path / "xdec.onnx", const)
    entry = {
        "file": "xdec.onnx",
        "format": "yolov5",
        "colour": "bgr",
        "normalisation": "none",
        "padding": "top_left",
    }
    det = OnnxDetector(path, ALL, manifest_entry=entry)
    out = det.detect(_white(64, 32))  # top-left: box clipped to h=32
    np.testing.assert_allclose(out.xyxy, [[22, 22, 42, 32]], atol=1e-3)

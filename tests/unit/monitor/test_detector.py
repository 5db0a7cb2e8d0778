"""OnnxDetector behaviour on bad frames, thresholds, filters and model resolution.

Models are tiny synthetic ONNX graphs (see test_detector_formats.py) run in the real
onnxruntime; the real shared models are in tests/integration/test_detector_models.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.base import COCO_CLASSES
from config.detector import DetectorConfig
from monitor.detector import (
    DetectorError,
    OnnxDetector,
    file_sha256,
    load_detector,
    resolve_model,
)
from monitor.types import Detections
from tests.unit.monitor.test_detector_formats import build_model, cells, yolov5_rows

N = 3 * cells(64, 64)
PERSON, CAR, BUS, DOG = 0, 2, 5, 16


def _model(tmp_path: Path, boxes: list[tuple[Any, ...]], name: str = "m.onnx") -> Path:
    return build_model(tmp_path / name, yolov5_rows(N, 80, boxes))


@pytest.fixture
def one_box(tmp_path: Path) -> OnnxDetector:
    return OnnxDetector(_model(tmp_path, [(32, 32, 20, 20, 1.0, PERSON, 0.9)]))


# ------------------------------------------------------------------ bad frames

GREY = np.full((40, 60), 200, np.uint8)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "image is None"),
        ("a string", "must be a numpy array, got str"),
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((10, 0, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3), np.float32), "must be uint8, got dtype float32"),
        (np.full((10, 10, 3), np.nan, np.float64), "must be uint8"),
        (np.zeros((10, 10, 2), np.uint8), "got shape (10, 10, 2)"),
        (np.zeros((1, 10, 10, 3), np.uint8), "got shape (1, 10, 10, 3)"),
        (np.zeros(10, np.uint8), "got shape (10,)"),
    ],
)
def test_bad_frames_raise_clear_errors(
    one_box: OnnxDetector, image: Any, message: str
) -> None:
    with pytest.raises(DetectorError) as err:
        one_box.detect(image)
    assert message in str(err.value)


def test_bad_frame_in_batch_is_named_by_index(one_box: OnnxDetector) -> None:
    with pytest.raises(DetectorError, match="image 1 is empty"):
        one_box.detect_batch([GREY, np.zeros((0, 4, 3), np.uint8)])


@pytest.mark.parametrize(
    ("image", "expected_xyxy"),
    [
        # all frames map to the same 64x64 network box (22, 22, 42, 42)
        (np.full((64, 64, 3), 90, np.uint8), [22, 22, 42, 42]),
        (np.full((64, 64), 90, np.uint8), [22, 22, 42, 42]),  # grey (H, W)
        (np.full((64, 64, 1), 90, np.uint8), [22, 22, 42, 42]),  # grey (H, W, 1)
        (np.full((64, 64, 4), 90, np.uint8), [22, 22, 42, 42]),  # BGRA
        (np.full((64, 64, 3), 90, np.uint8)[..., ::-1], [22, 22, 42, 42]),  # view
        (np.full((128, 128, 3), 90, np.uint8)[::2, ::2], [22, 22, 42, 42]),  # strided
        # 1x1 frame: the box covers (and is clipped to) the single pixel
        (np.full((1, 1, 3), 90, np.uint8), [0.34375, 0.34375, 0.65625, 0.65625]),
    ],
)
def test_odd_but_usable_frames_are_converted(
    one_box: OnnxDetector, image: np.ndarray, expected_xyxy: list[float]
) -> None:
    out = one_box.detect(image)
    assert len(out) == 1
    np.testing.assert_allclose(out.xyxy[0], expected_xyxy, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 5000, 3), (5000, 1, 3), (1, 1, 3), (3, 2, 3)])
def test_extreme_aspect_ratios_do_not_crash(
    one_box: OnnxDetector, shape: tuple[int, ...]
) -> None:
    out = one_box.detect(np.full(shape, 90, np.uint8))
    h, w = shape[:2]
    assert isinstance(out, Detections)
    assert (out.xyxy[:, [0, 2]] <= w).all() and (out.xyxy[:, [1, 3]] <= h).all()


def test_nan_producing_content_gives_empty_result(one_box: OnnxDetector) -> None:
    """An all-black frame makes the synthetic model output NaN (log 0 * 0)."""
    assert len(one_box.detect(np.zeros((64, 64, 3), np.uint8))) == 0
    assert len(one_box.detect(np.full((64, 64, 3), 1, np.uint8))) == 1


def test_non_finite_rows_are_dropped_good_rows_kept(tmp_path: Path) -> None:
    const = yolov5_rows(
        N,
        80,
        [
            (32, 32, 20, 20, 1.0, PERSON, 0.9),
            (10, 10, np.inf, 5, 1.0, PERSON, 0.95),
            (np.nan, 10, 5, 5, 1.0, PERSON, 0.95),
            (50, 50, 5, 5, np.nan, CAR, 0.95),
            (50, 50, 5, 5, 1.0, CAR, np.inf),
        ],
    )
    det = OnnxDetector(build_model(tmp_path / "nan.onnx", const))
    out = det.detect(np.full((64, 64, 3), 90, np.uint8))
    np.testing.assert_allclose(out.xyxy, [[22, 22, 42, 42]], atol=1e-3)
    assert out.class_id.tolist() == [PERSON]


# ------------------------------------------------------------------ filters

BOXES = [
    (10, 10, 8, 8, 1.0, PERSON, 0.50),  # area 64
    (40, 10, 8, 8, 1.0, CAR, 0.35),
    (10, 40, 8, 8, 1.0, BUS, 0.90),
    (40, 40, 8, 8, 1.0, DOG, 0.99),  # not a default class
    (32, 32, 60, 60, 1.0, PERSON, 0.95),  # area 3600 of 4096
    (22, 22, 2, 2, 1.0, PERSON, 0.31),  # area 4
]


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (
            DetectorConfig(),
            [(PERSON, 0.95), (BUS, 0.90), (PERSON, 0.50), (CAR, 0.35), (PERSON, 0.31)],
        ),
        (
            DetectorConfig(class_thresholds={"car": 0.4, "person": 0.45}),
            [(PERSON, 0.95), (BUS, 0.90), (PERSON, 0.50)],
        ),
        (DetectorConfig(score_threshold=0.6), [(PERSON, 0.95), (BUS, 0.90)]),
        (DetectorConfig(classes=("car", "dog")), [(DOG, 0.99), (CAR, 0.35)]),
        (
            DetectorConfig(min_area_px=10),
            [(PERSON, 0.95), (BUS, 0.90), (PERSON, 0.50), (CAR, 0.35)],
        ),
        (
            DetectorConfig(max_area_frac=0.5),
            [(BUS, 0.90), (PERSON, 0.50), (CAR, 0.35), (PERSON, 0.31)],
        ),
        (DetectorConfig(classes=("giraffe",)), []),
    ],
)
def test_thresholds_classes_and_area(
    tmp_path: Path, cfg: DetectorConfig, expected: list[tuple[int, float]]
) -> None:
    det = OnnxDetector(_model(tmp_path, BOXES), cfg)
    out = det.detect(np.full((64, 64, 3), 90, np.uint8))
    got = [
        (int(c), round(float(s), 2))
        for c, s in zip(out.class_id, out.confidence, strict=True)
    ]
    assert got == expected


@pytest.mark.parametrize(
    ("boxes", "expected_classes"),
    [
        # same class, IoU 0.82: one survives (the higher score)
        ([(30, 30, 20, 20, 1.0, PERSON, 0.9), (31, 30, 20, 20, 1.0, PERSON, 0.8)], [0]),
        # same boxes, different classes: class-aware NMS keeps both
        (
            [(30, 30, 20, 20, 1.0, PERSON, 0.9), (31, 30, 20, 20, 1.0, CAR, 0.8)],
            [PERSON, CAR],
        ),
        # same class, IoU 1/3: both kept
        (
            [(20, 20, 20, 20, 1.0, PERSON, 0.9), (30, 20, 20, 20, 1.0, PERSON, 0.8)],
            [PERSON, PERSON],
        ),
    ],
)
def test_class_aware_nms(
    tmp_path: Path, boxes: list[tuple[Any, ...]], expected_classes: list[int]
) -> None:
    det = OnnxDetector(_model(tmp_path, boxes))
    out = det.detect(np.full((64, 64, 3), 90, np.uint8))
    assert out.class_id.tolist() == expected_classes
    assert (np.diff(out.confidence) <= 0).all()


def test_detect_batch_empty_and_timings(one_box: OnnxDetector) -> None:
    assert one_box.detect_batch([]) == []
    one_box.detect(GREY)
    assert set(one_box.last_timing) == {"pre_ms", "infer_ms", "post_ms"}
    assert all(v >= 0 for v in one_box.last_timing.values())


def test_detections_contract(one_box: OnnxDetector) -> None:
    out = one_box.detect(np.full((64, 64, 3), 90, np.uint8))
    assert out.xyxy.dtype == np.float32 and out.confidence.dtype == np.float32
    assert out.class_id.dtype == np.int64 and out.tracker_id is None
    assert len(one_box.model_sha256) == 64
    assert one_box.model_name == "m"
    assert one_box.input_size == (64, 64)
    assert one_box.class_names == COCO_CLASSES


# ------------------------------------------------------------------ resolution


def _models_dir(tmp_path: Path, sha: str | None = None) -> tuple[Path, str]:
    d = tmp_path / "models"
    d.mkdir()
    path = _model(d, [(32, 32, 20, 20, 1.0, PERSON, 0.9)], name="tiny.onnx")
    real = file_sha256(path)
    (d / "manifest.yaml").write_text(
        "schema_version: 1\nmodels:\n"
        f"  tiny:\n    file: tiny.onnx\n    sha256: {sha or real}\n    format: yolov5\n"
        "  absent:\n    file: absent.onnx\n    sha256: '00'\n"
    )
    return d, real


def test_load_by_manifest_name(tmp_path: Path) -> None:
    d, real = _models_dir(tmp_path)
    det = load_detector(DetectorConfig(model="tiny", models_dir=str(d)))
    assert det.model_name == "tiny" and det.model_sha256 == real


def test_load_by_path_uses_matching_manifest_entry(tmp_path: Path) -> None:
    d, _ = _models_dir(tmp_path)
    path, entry, name = resolve_model(
        DetectorConfig(model=str(d / "tiny.onnx"), models_dir=str(d))
    )
    assert name == "tiny" and entry is not None and entry["format"] == "yolov5"
    det = load_detector(DetectorConfig(model="tiny.onnx", models_dir=str(d)))
    assert det.model_name == "tiny"


def test_sha256_mismatch_refused_unless_disabled(tmp_path: Path) -> None:
    d, real = _models_dir(tmp_path, sha="ab" * 32)
    with pytest.raises(DetectorError, match=f"has sha256 {real}, manifest says abab"):
        load_detector(DetectorConfig(model="tiny", models_dir=str(d)))
    det = load_detector(
        DetectorConfig(model="tiny", models_dir=str(d), verify_sha256=False)
    )
    assert det.model_sha256 == real


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nosuch", r"unknown model 'nosuch'.*known: absent, tiny"),
        ("absent", r"absent.onnx not found.*hallmonitor models import"),
        ("missing.onnx", "model file missing.onnx not found"),
    ],
)
def test_unknown_or_missing_models(tmp_path: Path, model: str, message: str) -> None:
    d, _ = _models_dir(tmp_path)
    with pytest.raises(DetectorError, match=message):
        load_detector(DetectorConfig(model=model, models_dir=str(d)))


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "manifest.yaml").write_text("models: [1, 2\n")
    with pytest.raises(DetectorError, match="not valid YAML"):
        load_detector(DetectorConfig(model="x", models_dir=str(d)))
    (d / "manifest.yaml").write_text("models:\n  x: {sha256: '1'}\n")
    with pytest.raises(DetectorError, match="entry 'x' needs at least a 'file:'"):
        load_detector(DetectorConfig(model="x", models_dir=str(d)))

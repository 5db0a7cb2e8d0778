"""Detector configuration (owned with monitor/detector.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from config.base import COCO_CLASSES, StrictModel

__all__ = ["DetectorConfig", "DEFAULT_CLASSES"]

DEFAULT_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "bus", "truck",
)  # fmt: skip

Score = Annotated[float, Field(ge=0.0, le=1.0)]


class DetectorConfig(StrictModel):
    """Which ONNX model to run and how to filter its output."""

    model: str = Field(
        "yolox_nano",
        title="Model",
        description="Name in models/manifest.yaml, or a path to an .onnx file",
        min_length=1,
    )
    models_dir: str = Field(
        "models",
        title="Models directory",
        description="Directory holding model weights (relative paths resolve against "
        "the config file's directory)",
    )
    input_size: int | None = Field(
        None,
        title="Input size",
        description="Square network input in pixels; default: the model's own",
        ge=32,
        le=4096,
        multiple_of=32,
    )
    score_threshold: Score = Field(
        0.3, title="Score threshold", description="Minimum score (0-1) to keep a box"
    )
    class_thresholds: dict[str, Score] = Field(
        default_factory=dict,
        title="Per-class score thresholds",
        description="Class name -> minimum score (0-1), overrides score_threshold",
    )
    nms_iou: float = Field(
        0.45,
        title="NMS IoU",
        description="Class-aware NMS IoU threshold (0-1)",
        gt=0.0,
        le=1.0,
    )
    classes: tuple[str, ...] = Field(
        DEFAULT_CLASSES,
        title="Classes",
        description="COCO class names to keep (others are dropped after NMS)",
        min_length=1,
    )
    min_area_px: float = Field(
        0.0,
        title="Minimum box area",
        description="Square pixels in the original frame",
        ge=0.0,
    )
    max_area_frac: float = Field(
        1.0,
        title="Maximum box area",
        description="Fraction of the frame area (0-1]",
        gt=0.0,
        le=1.0,
    )
    threads: int = Field(
        2, title="Threads", description="ONNX Runtime intra-op threads", ge=1, le=64
    )
    verify_sha256: bool = Field(
        True,
        title="Verify checksum",
        description="Refuse a manifest model whose file does not match its sha256",
    )

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in v if c not in COCO_CLASSES]
        if unknown:
            raise ValueError(f"unknown class name(s) {unknown}; use COCO names")
        if len(set(v)) != len(v):
            raise ValueError("duplicate class names")
        return v

    @field_validator("class_thresholds")
    @classmethod
    def _known_threshold_classes(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [c for c in v if c not in COCO_CLASSES]
        if unknown:
            raise ValueError(f"unknown class name(s) {unknown}; use COCO names")
        return v

"""Config schema: bounds on every numeric field, unknown keys, polygons, ids."""

from __future__ import annotations

import math
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from config import rules, schema
from config.detector import DetectorConfig
from config.tracker import TrackerConfig

CAM_SOURCE = {"url": "/videos/a.mp4"}
ZONE = {"id": "z", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}
LINE = {"id": "l", "start": [0.0, 0.5], "end": [1.0, 0.5]}

# Smallest valid keyword arguments for each model.
MINIMAL: dict[type[BaseModel], dict[str, Any]] = {
    DetectorConfig: {},
    TrackerConfig: {},
    schema.RedisConfig: {},
    schema.StorageConfig: {},
    schema.ApiConfig: {},
    schema.SupervisorConfig: {},
    schema.EvidenceConfig: {},
    schema.SourceConfig: CAM_SOURCE,
    schema.CameraConfig: {"id": "c", "source": CAM_SOURCE},
    rules.ScheduleConfig: {"name": "s", "start": "18:00", "end": "06:00"},
    rules.LoiteringRuleConfig: {"id": "r", "zone": "z"},
    rules.CrowdingRuleConfig: {"id": "r", "zone": "z"},
    rules.VehicleFlowRuleConfig: {"id": "r", "line": "l"},
    rules.OccupancyRuleConfig: {"id": "r", "lines": ["f"]},
}


def _numeric_bounds() -> list[tuple[type[BaseModel], str, str, float]]:
    cases = []
    for model in MINIMAL:
        for name, f in model.model_fields.items():
            ann = f.annotation
            args = typing.get_args(ann) or (ann,)
            if not any(a in (int, float) for a in args):
                continue
            for m in f.metadata:
                for attr in ("ge", "gt", "le", "lt"):
                    v = getattr(m, attr, None)
                    if v is not None:
                        cases.append((model, name, attr, float(v)))
    return cases


BOUNDS = _numeric_bounds()


def test_every_numeric_field_has_bounds() -> None:
    """Every int/float field of every model declares at least one bound."""
    bounded = {(m, n) for m, n, _, _ in BOUNDS}
    missing = []
    for model in MINIMAL:
        for name, f in model.model_fields.items():
            args = typing.get_args(f.annotation) or (f.annotation,)
            if any(a in (int, float) for a in args) and (model, name) not in bounded:
                missing.append(f"{model.__name__}.{name}")
    assert not missing, f"numeric fields without bounds: {missing}"


@pytest.mark.parametrize(
    ("model", "field", "kind", "bound"),
    BOUNDS,
    ids=[f"{m.__name__}.{n}.{k}" for m, n, k, _ in BOUNDS],
)
def test_bound_is_enforced(
    model: type[BaseModel], field: str, kind: str, bound: float
) -> None:
    base = dict(MINIMAL[model])
    step = (
        1
        if model.model_fields[field].annotation is int
        else max(abs(bound) * 1e-3, 1e-3)
    )
    outside = {"ge": bound - step, "gt": bound, "le": bound + step, "lt": bound}[kind]
    if model.model_fields[field].annotation is int:
        outside = int(outside) if kind in ("ge", "le") else int(bound)
    with pytest.raises(ValidationError) as err:
        model(**{**base, field: outside})
    assert any(field in e["loc"] for e in err.value.errors())


def test_minimal_models_are_valid() -> None:
    for model, kw in MINIMAL.items():
        model(**kw)


@pytest.mark.parametrize("model", list(MINIMAL), ids=lambda m: m.__name__)
def test_unknown_key_rejected(model: type[BaseModel]) -> None:
    with pytest.raises(ValidationError) as err:
        model(**{**MINIMAL[model], "surprise": 1})
    assert err.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("polygon", "needle"),
    [
        ([[0.1, 0.1], [0.9, 0.1]], "at least 3"),
        ([[0.1, 0.1], [1.2, 0.1], [0.5, 0.9]], "outside the 0-1"),
        ([[0.1, 0.1], [-0.01, 0.1], [0.5, 0.9]], "outside the 0-1"),
        ([[0.1, math.nan], [0.9, 0.1], [0.5, 0.9]], "not finite"),
        ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], "zero area"),
    ],
    ids=["two-points", "x>1", "x<0", "nan", "collinear"],
)
def test_bad_polygon(polygon: list[list[float]], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        schema.ZoneConfig(id="z", polygon=polygon)
    assert needle in str(err.value)


def test_line_direction_parallel_rejected() -> None:
    with pytest.raises(ValidationError, match="parallel"):
        schema.LineConfig(**LINE, in_direction="left")
    schema.LineConfig(**LINE, in_direction="down")


def test_duplicate_ids() -> None:
    with pytest.raises(ValidationError, match="duplicate zones"):
        schema.CameraConfig(id="c", source=CAM_SOURCE, zones=[ZONE, ZONE])
    cam = {"id": "c", "source": CAM_SOURCE}
    with pytest.raises(ValidationError, match="duplicate cameras"):
        schema.AppConfig(cameras=[cam, cam])


def test_rule_must_reference_existing_zone_and_line() -> None:
    with pytest.raises(ValidationError, match="unknown zone 'nope'"):
        schema.CameraConfig(
            id="c", source=CAM_SOURCE, zones=[ZONE],
            rules={"loitering": [{"id": "r", "zone": "nope"}]},
        )  # fmt: skip
    with pytest.raises(ValidationError, match="unknown line 'x'"):
        schema.CameraConfig(
            id="c", source=CAM_SOURCE, lines=[LINE],
            rules={"vehicle_flow": [{"id": "f", "line": "x"}]},
        )  # fmt: skip


def test_rule_classes_must_be_detected() -> None:
    cam = {
        "id": "c",
        "source": CAM_SOURCE,
        "zones": [ZONE],
        "rules": {"loitering": [{"id": "r", "zone": "z", "classes": ["car"]}]},
    }
    with pytest.raises(ValidationError, match="detector.classes drops"):
        schema.AppConfig(detector={"classes": ["person"]}, cameras=[cam])


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://admin:hunter2@10.0.0.5/stream",
        "rtsp://first.last%40school.org:p%40ss@cam/x",
        "http://user@cam/mjpeg",
    ],
)
def test_inline_credentials_refused_without_echo(url: str) -> None:
    """The loader's error names the field but never echoes the URL's secret."""
    from config.loader import ConfigError, load_config_text

    text = f"cameras:\n  - id: c\n    source: {{url: '{url}'}}\n"
    with pytest.raises(ConfigError) as err:
        load_config_text(text, file="cams.yaml")
    msg = str(err.value)
    assert "cams.yaml:3: cameras.0.source.url" in msg
    assert "credentials must not be written inline" in msg
    for secret in ("hunter2", "p%40ss", "p@ss", "user@"):
        assert secret not in msg


def test_unknown_timezone() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        schema.CameraConfig(id="c", source=CAM_SOURCE, timezone="Mars/Olympus")


def test_detect_url_is_checked_like_url() -> None:
    """A sub-stream URL is validated like the main one (no inline credentials)."""
    ok = schema.SourceConfig(url="rtsp://cam/main", detect_url="rtsp://cam/sub")
    assert ok.detect_url == "rtsp://cam/sub"
    with pytest.raises(ValidationError, match="credentials must not be written inline"):
        schema.SourceConfig(url="rtsp://cam/main", detect_url="rtsp://u:p@cam/sub")


def test_schedule_min_count_only_for_crowding() -> None:
    """A group size in a loitering rule's schedule would be silently ignored, so
    it is refused, naming the schedule; crowding rules take it."""
    night = {"name": "night", "start": "22:00", "end": "06:00", "min_count": 2}
    with pytest.raises(ValidationError) as err:
        rules.LoiteringRuleConfig(id="r", zone="z", schedules=[night])
    assert "['night'] set min_count, which only crowding rules have" in str(err.value)
    rule = rules.CrowdingRuleConfig(id="r", zone="z", schedules=[night])
    assert rule.schedules[0].min_count == 2


def test_schedule_min_count_error_names_file_and_line() -> None:
    text = """\
cameras:
  - id: hall
    source: {url: /videos/hall.mp4}
    zones:
      - id: z
        polygon: [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]
    rules:
      loitering:
        - id: l
          zone: z
          schedules:
            - {name: night, start: "22:00", end: "06:00", min_count: 2}
"""
    from config.loader import ConfigError, load_config_text

    with pytest.raises(ConfigError) as err:
        load_config_text(text, file="<f>")
    msg = str(err.value)
    assert "<f>:12: cameras.0.rules.loitering.0.schedules:" in msg, msg
    assert "only crowding rules" in msg

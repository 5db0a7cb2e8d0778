"""Build a camera's rule pipelines from its configuration."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from config.schema import CameraConfig
from pipelines.base import Pipeline
from pipelines.crowding import CrowdingPipeline
from pipelines.loitering import LoiteringPipeline
from pipelines.occupancy import OccupancyPipeline
from pipelines.vehicle_flow import VehicleFlowPipeline

__all__ = ["build_pipelines"]

log = logging.getLogger(__name__)


def build_pipelines(
    camera: CameraConfig,
    class_names: Sequence[str],
    class_groups: Sequence[Sequence[str]] | None = None,
) -> list[Pipeline]:
    """One pipeline per configured rule, in an order the worker can run as is.

    Occupancy pipelines read the crossings of the flow pipelines they name on the
    same frame, so they come after every flow pipeline.

    Args:
        camera: The camera (zones, lines, rules, time zone).
        class_names: Detector class names, index == class id.
        class_groups: The tracker's ``class_groups`` (loitering id switches stay
            within a group); None: the tracker's default.

    Raises:
        ValueError: A rule needs a class the detector does not have, or names a
            zone/line/flow rule that does not exist.
    """
    names = tuple(class_names)
    tz = camera.timezone
    rules = camera.rules
    out: list[Pipeline] = []
    try:
        for lr in rules.loitering:
            out.append(
                LoiteringPipeline(lr, camera.zone(lr.zone), names, tz, class_groups)
            )
        for cr in rules.crowding:
            out.append(CrowdingPipeline(cr, camera.zone(cr.zone), names, tz))
        flows: dict[str, VehicleFlowPipeline] = {}
        for fr in rules.vehicle_flow:
            flows[fr.id] = VehicleFlowPipeline(fr, camera.line(fr.line), names, tz)
        out.extend(flows.values())
        for oc in rules.occupancy:
            out.append(OccupancyPipeline(oc, [flows[x] for x in oc.lines], tz))
    except KeyError as exc:
        raise ValueError(
            f"camera {camera.id!r}: rule refers to unknown zone/line/rule {exc}"
        ) from None
    log.info("camera %s: %d rule pipeline(s)", camera.id, len(out))
    return out

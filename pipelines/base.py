"""The contract every analytics rule implements."""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from monitor.events import Event
from monitor.types import Detections, Frame

__all__ = ["Pipeline", "parse_saved_state", "restored_clock_offset"]

M = TypeVar("M", bound=BaseModel)

# A restored time is placed at least this long before the first frame (s).
_RESTORED_EPS_S = 1e-3


class Pipeline(Protocol):
    """A stateful rule over tracked detections.

    Pipelines do no I/O and read no clock: durations come from ``frame.mono`` and
    event timestamps from ``frame.ts``. Per-track state is evicted when the tracker
    reports the id in ``removed_ids``.
    """

    def update(
        self,
        frame: Frame,
        detections: Detections,
        removed_ids: npt.NDArray[np.int64],
    ) -> list[Event]:
        """Consume one frame's tracked detections (``tracker_id`` set, confirmed
        tracks only) and return the events it raises (``model_sha256`` and ``media``
        left empty: the worker fills them)."""
        ...

    def reset(self) -> None:
        """Forget all state (e.g. after a camera reconnect)."""
        ...


def parse_saved_state(
    model: type[M], state: object, kind: str, rule_id: str, logger: logging.Logger
) -> M | None:
    """A pipeline's saved state (its ``restore`` argument) validated as ``model``.

    The state comes from a file on disk (``monitor/state.py``): anything that does
    not validate, or that belongs to another rule, is logged as a warning
    (``"<kind> <rule>: ignoring saved state…"``) and gives None, so the rule starts
    from scratch as it would without it.

    Args:
        model: The pipeline's state model (strict, with a ``rule_id`` field).
        state: What was saved.
        kind: The rule kind, for the message (``"loitering"``).
        rule_id: The rule restoring it.
        logger: The pipeline module's logger.
    """
    try:
        st = model.model_validate(state)
    except ValidationError as exc:
        logger.warning(
            "%s %s: ignoring saved state: %s",
            kind,
            rule_id,
            str(exc).replace("\n", "; ")[:500],
        )
        return None
    saved_rule = getattr(st, "rule_id", rule_id)
    if saved_rule != rule_id:
        logger.warning(
            "%s %s: ignoring saved state of rule %r", kind, rule_id, saved_rule
        )
        return None
    return st


def restored_clock_offset(
    now: float, ts: float, saved_ts: float, paused: float
) -> float:
    """What to add to an epoch time saved before a restart to place it on this
    process's monotonic clock, on the first frame after the restart.

    ``x -> now - (ts - x) + paused``: the outage paused out before the frame
    (``pause()``, the worker's restart bridge) is left out of durations. If the wall
    clock was set back meanwhile, the saved times would land after this frame: all
    move back together (durations kept) so that the last saved frame
    (``saved_ts``) is just before it.

    Args:
        now: The frame's ``mono``.
        ts: The frame's ``ts`` (epoch seconds).
        saved_ts: Epoch seconds of the last frame in the saved state.
        paused: Seconds paused out before this frame.
    """
    shift = min(0.0, (ts - saved_ts) - paused - _RESTORED_EPS_S)
    return now - ts + paused + shift

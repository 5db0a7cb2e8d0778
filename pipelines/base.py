"""The contract every analytics rule implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from monitor.events import Event
from monitor.types import Detections, Frame

__all__ = ["Pipeline"]


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

"""Rule state that must survive a worker restart, in one small JSON file per camera.

Most rule state is short-lived (a visit, a crossing) and is rebuilt from the next
frames. A lot's occupancy is not: it is the running sum of a whole day's crossings, and
a worker restart (a crash, an upgrade, a reboot) must not set it back to 0. Pipelines
that need this implement ``snapshot() -> dict | None`` and ``restore(dict) -> bool``;
the worker keeps their snapshots in ``<data_dir>/state/<camera>.json``:

    {"version": 1, "camera_id": "lot", "rules": {"occupancy:lot-a": {...}},
     "open_events": {"<event uuid>": {<the event's last message>}}}

``open_events`` are the events that had started and not ended (a loitering visit, a
crowd, a count bucket) when the file was written. The pipelines that raised them are
gone after a restart, so nothing would ever end them and the review queue would show
them as ongoing forever: the new worker ends each one with its last known numbers
(:meth:`RuleStateStore.orphans`).

Writes are atomic (temporary file + ``os.replace``) and happen only when a snapshot
changed. A file that cannot be read or parsed is moved aside to ``*.corrupt-<time>``
(kept for inspection, never silently deleted) and the camera starts from scratch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.events import Event, EventState

__all__ = ["RuleStateStore", "pipeline_key"]

log = logging.getLogger(__name__)

_VERSION = 1
_MAX_BYTES = 1 << 20  # a state file is a few hundred bytes; refuse absurd ones


def pipeline_key(pipeline: Any) -> str | None:
    """``<kind>:<rule id>`` for a pipeline that keeps state across restarts, else None."""
    if not (hasattr(pipeline, "snapshot") and hasattr(pipeline, "restore")):
        return None
    rule = getattr(pipeline, "rule", None)
    rule_id = getattr(rule, "id", None)
    if not rule_id:
        return None
    kind = type(pipeline).__name__.removesuffix("Pipeline").lower()
    return f"{kind}:{rule_id}"


class RuleStateStore:
    """One camera's saved rule state.

    Args:
        path: The camera's state file (its directory is created on first save).
        camera_id: The camera, checked against the file's own.
    """

    def __init__(self, path: Path, camera_id: str) -> None:
        self.path = Path(path)
        self.camera_id = camera_id
        self._saved: dict[str, Any] = {}
        self._saved_open: dict[str, Any] = {}
        self._orphans: list[Event] = []
        self.writes = 0

    def load(self) -> dict[str, Any]:
        """Saved snapshots by pipeline key ({} when there are none or they are bad)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning(
                "camera %s: cannot read rule state %s: %s",
                self.camera_id,
                self.path,
                exc,
            )
            return {}
        problem = ""
        data: Any = None
        if len(raw) > _MAX_BYTES:
            problem = f"{len(raw)} bytes, more than {_MAX_BYTES}"
        else:
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                problem = f"not JSON ({exc})"
        if not problem:
            if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
                problem = 'not an object with a "rules" object'
            elif data.get("version") != _VERSION:
                problem = f"version {data.get('version')!r}, expected {_VERSION}"
            elif data.get("camera_id") != self.camera_id:
                problem = (
                    f"camera {data.get('camera_id')!r}, expected {self.camera_id!r}"
                )
            elif not isinstance(data.get("open_events", {}), dict):
                problem = '"open_events" is not an object'
        if problem:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            try:
                os.replace(self.path, aside)
            except OSError:
                aside = self.path
            log.warning(
                "camera %s: rule state %s is unusable (%s); starting from scratch, "
                "the file is kept as %s",
                self.camera_id,
                self.path,
                problem,
                aside,
            )
            return {}
        rules: dict[str, Any] = data["rules"]
        self._saved = dict(rules)
        self._saved_open = dict(data.get("open_events", {}))
        self._orphans = []
        for key, raw_ev in self._saved_open.items():
            try:
                ev = Event.model_validate(raw_ev)
            except ValidationError as exc:
                log.warning(
                    "camera %s: ignoring saved open event %s in %s: %s",
                    self.camera_id,
                    key,
                    self.path,
                    str(exc).replace("\n", "; ")[:500],
                )
                continue
            if ev.camera_id == self.camera_id and ev.state in (
                EventState.START,
                EventState.UPDATE,
            ):
                self._orphans.append(ev)
        return rules

    def orphans(self) -> list[Event]:
        """End messages for the events left open by the previous worker (once).

        Each is the event's last saved message as ``end`` at the next revision,
        ended at that message's time (the last moment anything was known), so the
        review queue stops showing it as ongoing. Call after :meth:`restore`.
        """
        out = [
            ev.model_copy(
                update={
                    "state": EventState.END,
                    "revision": ev.revision + 1,
                    "ended_at": ev.ts,
                    "media": (),
                }
            )
            for ev in self._orphans
            if ev.revision < 1_000_000
        ]
        self._orphans = []
        return out

    def restore(self, pipelines: Sequence[Any]) -> int:
        """Hand each stateful pipeline its saved snapshot; returns how many took it."""
        saved = self.load()
        taken = 0
        for p in pipelines:
            key = pipeline_key(p)
            if key is not None and key in saved and p.restore(saved[key]):
                taken += 1
        # Keys of rules no longer configured are dropped on the next save.
        return taken

    def save(
        self, pipelines: Sequence[Any], open_events: dict[str, Event] | None = None
    ) -> bool:
        """Write the pipelines' snapshots and the open events if they changed.

        Args:
            pipelines: The camera's pipelines (those with ``snapshot()`` are saved).
            open_events: The last message of each event still open, by event id.

        Returns:
            Whether it wrote the file.
        """
        rules: dict[str, Any] = {}
        for p in pipelines:
            key = pipeline_key(p)
            if key is None:
                continue
            snap = p.snapshot()
            if snap is not None:
                rules[key] = snap
        opened = {
            k: ev.model_dump(mode="json") for k, ev in (open_events or {}).items()
        }
        if rules == self._saved and opened == self._saved_open:
            return False
        body = json.dumps(
            {
                "version": _VERSION,
                "camera_id": self.camera_id,
                "rules": rules,
                "open_events": opened,
            },
            sort_keys=True,
        ).encode()
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(body)
            os.replace(tmp, self.path)
        except OSError as exc:
            # Losing the state file costs a restart's worth of occupancy, not the
            # camera: log and keep going (the next change tries again).
            log.warning(
                "camera %s: cannot save rule state %s: %s",
                self.camera_id,
                self.path,
                exc,
            )
            return False
        self._saved = rules
        self._saved_open = opened
        self.writes += 1
        return True

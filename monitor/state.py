"""Rule state that must survive a worker restart, in one small JSON file per camera.

A worker restart (a crash, an upgrade, a reboot) must not set a lot's occupancy back
to 0 mid-day, end and restart the events of people still loitering, or split a count
bucket. Pipelines that carry state across it implement ``snapshot() -> dict | None``
and ``restore(dict) -> bool`` (and ``restored_events() -> set[str]``, the open events
they continue); the worker keeps their snapshots in
``<data_dir>/state/<camera>.json``:

    {"version": 1, "camera_id": "lot", "rules": {"occupancy:lot-a": {...}},
     "open_events": {"<event uuid>": {<the event's last message>}},
     "tracker": {"next_id": 412}, "frame_ts": 1780000000.123}

``open_events`` are the events that had started and not ended (a loitering visit, a
crowd, a count bucket) when the file was written. A pipeline that restores itself
continues its own (:meth:`RuleStateStore.claimed`). Nothing would ever end the others
(a rule since removed from the config, unusable saved state), and the review queue
would show them as ongoing forever, so the new worker ends each one with its last
known numbers (:meth:`RuleStateStore.orphans`).

``tracker.next_id`` keeps track ids unique across restarts (an id in an event is
never handed to another object), and ``frame_ts`` (epoch seconds of the last frame
when the file was written, not itself a reason to write) tells the new worker how
long the restart left the camera unwatched.

Writes are atomic (temporary file + ``os.replace``) and happen only when a snapshot
changed. A file that cannot be read or parsed is moved aside to ``*.corrupt-<time>``
(kept for inspection, never silently deleted) and the camera starts from scratch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.events import Event, EventState
from pipelines.occupancy import end_of_saved_day

__all__ = ["RuleStateStore", "pipeline_key", "retire_state_files"]

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
        self._saved_tracker: dict[str, Any] | None = None
        self._orphans: list[Event] = []
        self._claimed: dict[str, Event] = {}
        self._ended_days: list[Event] = []
        self.writes = 0
        #: From the loaded file: the tracker's next id and the last frame's time.
        self.next_id: int | None = None
        self.frame_ts: float | None = None

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
        self.next_id, self.frame_ts = None, None
        tracker = data.get("tracker")
        next_id = tracker.get("next_id") if isinstance(tracker, dict) else None
        if type(next_id) is int and 1 <= next_id < 2**62:
            self.next_id = next_id
            self._saved_tracker = {"next_id": next_id}
        elif tracker is not None:
            log.warning(
                "camera %s: ignoring bad tracker state in %s: %r",
                self.camera_id,
                self.path,
                tracker,
            )
        frame_ts = data.get("frame_ts")
        if isinstance(frame_ts, int | float) and math.isfinite(frame_ts):
            self.frame_ts = float(frame_ts)
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
        review queue stops showing it as ongoing; and the ``end`` of each saved
        occupancy day no pipeline took (:func:`pipelines.occupancy.end_of_saved_day`).
        Call after :meth:`restore`.
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
        out += self._ended_days
        self._orphans, self._ended_days = [], []
        return out

    def restore(self, pipelines: Sequence[Any], tracker: Any | None = None) -> int:
        """Hand each stateful pipeline its saved snapshot; returns how many took it.

        Args:
            pipelines: The camera's pipelines.
            tracker: The camera's tracker (:class:`monitor.tracker.Tracker`): its
                ids continue after the saved ones.
        """
        saved = self.load()
        taken = 0
        taken_keys: set[str] = set()
        claimed: set[str] = set()
        self._ended_days = []
        for p in pipelines:
            key = pipeline_key(p)
            if key is not None and key in saved and p.restore(saved[key]):
                taken += 1
                taken_keys.add(key)
                events = getattr(p, "restored_events", None)
                if callable(events):
                    claimed |= set(events())
        if tracker is not None and self.next_id is not None:
            tracker.next_id = self.next_id
        # An occupancy day no pipeline took (rule removed, or its state refused) is
        # not among the open events: end it here, at the camera's last frame.
        last = self.frame_ts if self.frame_ts is not None else time.time()
        for key, snap in saved.items():
            if key.startswith("occupancy:") and key not in taken_keys:
                day_end = end_of_saved_day(snap, last)
                if day_end is not None and day_end.camera_id in ("", self.camera_id):
                    self._ended_days.append(
                        day_end.model_copy(update={"camera_id": self.camera_id})
                    )
        self._claimed = {
            str(ev.event_id): ev for ev in self._orphans if str(ev.event_id) in claimed
        }
        self._orphans = [ev for ev in self._orphans if str(ev.event_id) not in claimed]
        # Keys of rules no longer configured are dropped on the next save.
        return taken

    def claimed(self) -> dict[str, Event]:
        """The saved open events a restored pipeline continues, by event id (their
        last messages: the worker keeps them open until the pipeline moves on)."""
        return dict(self._claimed)

    def save(
        self,
        pipelines: Sequence[Any],
        open_events: dict[str, Event] | None = None,
        tracker: Any | None = None,
        frame_ts: float | None = None,
    ) -> bool:
        """Write the pipelines' snapshots and the open events if they changed.

        Args:
            pipelines: The camera's pipelines (those with ``snapshot()`` are saved).
            open_events: The last message of each event still open, by event id.
            tracker: The camera's tracker (its next id is saved).
            frame_ts: Epoch seconds of the last frame processed (written along,
                never a reason to write).

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
        tracked = {"next_id": int(tracker.next_id)} if tracker is not None else None
        if (
            rules == self._saved
            and opened == self._saved_open
            and tracked == self._saved_tracker
        ):
            return False
        doc: dict[str, Any] = {
            "version": _VERSION,
            "camera_id": self.camera_id,
            "rules": rules,
            "open_events": opened,
        }
        if tracked is not None:
            doc["tracker"] = tracked
        if frame_ts is not None and math.isfinite(frame_ts):
            doc["frame_ts"] = round(float(frame_ts), 3)
        body = json.dumps(doc, sort_keys=True).encode()
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
        self._saved_tracker = tracked
        self.writes += 1
        return True


def retire_state_files(
    state_dir: Path, cameras: Collection[str], publish: Callable[[Event], None]
) -> int:
    """End the open events of cameras that no longer run, and set their files aside.

    A camera removed from the config (or disabled) has no worker to restore its
    state, so the events it left open would stay "ongoing" in the review queue
    forever. ``hallmonitor run`` calls this on start: each state file of a camera
    not in ``cameras`` has its open events ended (as :meth:`RuleStateStore.orphans`
    does) and is renamed ``<camera>.json.retired-<time>`` (kept for inspection);
    the camera starts afresh if it comes back. A file whose events cannot all be
    published is left in place, to be tried again on the next start.

    Args:
        state_dir: ``<data_dir>/state``.
        cameras: Ids of the cameras that run now.
        publish: Sends one event (raises on failure).

    Returns:
        How many events were ended.
    """
    ended = 0
    try:
        paths = sorted(Path(state_dir).glob("*.json"))
    except OSError:  # pragma: no cover - an unreadable directory: nothing to do
        return 0
    for path in paths:
        camera_id = path.stem
        if camera_id in cameras:
            continue
        store = RuleStateStore(path, camera_id)
        store.restore(())
        events = store.orphans()
        try:
            for ev in events:
                publish(ev)
        except Exception:  # noqa: BLE001 - keep the file; the next start retries
            log.exception(
                "camera %s is no longer configured, but its open events could not "
                "be ended; keeping %s",
                camera_id,
                path,
            )
            continue
        ended += len(events)
        if path.exists():
            aside = path.with_name(f"{path.name}.retired-{int(time.time())}")
            try:
                os.replace(path, aside)
            except OSError as exc:  # pragma: no cover - read-only state dir
                log.warning("cannot set aside %s: %s", path, exc)
        log.info(
            "camera %s is no longer configured: ended %d open event(s) it left",
            camera_id,
            len(events),
        )
    return ended

"""Invariants of all four rules over seeded random scenes (build_pipelines).

Each seed draws a camera (zone, line, loitering / crowding / vehicle-flow /
occupancy rules with random thresholds and schedules) and a scene: people and cars
walking or standing, missed detections in bursts, id switches (the old id removed a
little later, as the tracker reports it), irregular frame intervals and camera gaps.
The tracker's first-detection columns are supplied as it does (a track is reported
from its second detection on). After the scene, idle empty frames must close
everything. Whatever the scene, the event streams must be well formed:

* every event: revisions 0, 1, 2, ... ; ``start``, ``update``*, ``end`` (closed by
  the idle tail; an occupancy day only at its reset), or one ``instant``;
  timestamps never go back; it survives the wire format;
* loitering: dwell at ``start`` >= the threshold in force, dwell never decreases,
  ``ended_at`` >= ``started_at``, never two open events on one track;
* crowding: one episode at a time, ``count <= max_count``, ``max_count`` and
  ``duration_s`` never decrease;
* vehicle flow: counts in a bucket never decrease, buckets are ``bucket_s`` long,
  the last revisions add up to the crossings counted, each track counts at most
  once per direction, ``wrong_way`` only against ``one_way`` for its classes;
* occupancy: ``occupancy <= entered`` since the day's start;
* bounded memory: no per-track rows left after the idle tail;
* in half of the scenes with a standing group, a neighbour takes a member's id
  (session 7): the id moves to the member beside them, whose own id is dropped,
  and the member, unseen for 0.1-1 s, comes back under a new id (the loitering
  rule hands the visit back, pipelines/loitering.py);
* a third of the scenes run across the occupancy day's reset, a quarter double the
  camera's resolution once, and half restart
  the worker once (state saved and restored through
  ``RuleStateStore``, unclaimed events ended, a short gap bridged, everyone under
  new track ids): the same invariants hold, revisions may skip one.

A failure names the seed; ``pytest -k "seed-17"`` replays it.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from config.base import COCO_CLASSES
from config.rules import (
    CrowdingRuleConfig,
    LoiteringRuleConfig,
    OccupancyRuleConfig,
    RulesConfig,
    ScheduleConfig,
    VehicleFlowRuleConfig,
)
from config.schema import CameraConfig, LineConfig, ZoneConfig
from monitor.events import Event, EventKind, EventState, decode_event, encode_event
from monitor.state import RuleStateStore
from monitor.tracker import Tracker
from monitor.worker import bridge_outage, track_open_event
from pipelines.crowding import CrowdingPipeline
from pipelines.factory import build_pipelines
from pipelines.loitering import LoiteringPipeline
from pipelines.vehicle_flow import VehicleFlowPipeline

# 0-39, and seeds that found bugs when 400 were run (session 6): 105, 166, 173 and
# 340, restarted workers whose event started_at moved and whose end came before
# its start or whose dwell went down by 1 ms (snapshots rounded epoch times to the
# millisecond); 147, an id switch that moved an open loitering event to another
# track without a message, so two open events named one track.
# 88 (with schedule grace): a restored event's dwell reported 1 ms lower than
# before the restart (float conversions across a rounding boundary).
REGRESSION_SEEDS = [88, 105, 147, 166, 173, 340]
SEEDS = [*range(40), *REGRESSION_SEEDS]
PERSON, CAR = COCO_CLASSES.index("person"), COCO_CLASSES.index("car")


def _schedule(rng: np.random.Generator, name: str, **extra: object) -> ScheduleConfig:
    h0, h1 = rng.choice(24, size=2, replace=False)
    return ScheduleConfig(
        name=name,
        start=f"{h0:02d}:00",
        end=f"{h1:02d}:{rng.choice([0, 30]):02d}",
        enabled=bool(rng.random() < 0.8),
        severity=str(rng.choice(["low", "high"])),
        **extra,  # type: ignore[arg-type]
    )


def make_camera(rng: np.random.Generator) -> CameraConfig:
    """A camera with one rule of each kind and random thresholds."""
    x0, y0 = rng.uniform(0.05, 0.4, 2)
    x1, y1 = rng.uniform(0.6, 0.95, 2)
    zone = ZoneConfig(id="z", polygon=((x0, y0), (x1, y0 + 0.1), (x1, y1), (x0, y1)))
    ly = rng.uniform(0.3, 0.7)
    line = LineConfig(
        id="l",
        start=(0.0, ly),
        end=(1.0, float(np.clip(ly + rng.uniform(-0.2, 0.2), 0.05, 0.95))),
        in_direction="down",
    )
    loiter = LoiteringRuleConfig(
        id="loiter",
        zone="z",
        classes=("person", "car"),
        min_dwell_s=float(rng.choice([0.5, 1.0, 2.0, 4.0])),
        entry_s=float(rng.choice([0.0, 0.3, 1.0])),
        grace_s=float(rng.choice([0.0, 0.5, 1.0, 2.0])),
        update_s=float(rng.choice([0.5, 1.0, 3.0])),
        cooldown_s=float(rng.choice([0.0, 1.0, 5.0])),
        reid_distance=float(rng.choice([0.0, 0.05, 0.2])),
        schedules=(
            (
                _schedule(
                    rng,
                    "s",
                    min_dwell_s=float(rng.choice([0.5, 3.0])),
                    grace_s=float(rng.choice([0.0, 1.0, 4.0])),
                ),
            )
            if rng.random() < 0.5
            else ()
        ),
    )
    crowd = CrowdingRuleConfig(
        id="crowd",
        zone="z",
        classes=("person",),
        min_count=int(rng.integers(2, 5)),
        min_duration_s=float(rng.choice([0.5, 2.0])),
        grace_s=float(rng.choice([0.0, 1.0])),
        update_s=float(rng.choice([1.0, 5.0])),
        schedules=(
            (
                _schedule(
                    rng,
                    "c",
                    min_count=int(rng.integers(2, 4)),
                    grace_s=float(rng.choice([0.0, 3.0])),
                ),
            )
            if rng.random() < 0.5
            else ()
        ),
    )
    flow = VehicleFlowRuleConfig(
        id="flow",
        line="l",
        classes=("person", "car"),
        bucket_s=int(rng.choice([10, 30, 900])),
        one_way=rng.choice([None, "in", "out"]),  # type: ignore[arg-type]
        switch_window_s=float(rng.choice([0.0, 2.0])),
    )
    occ = OccupancyRuleConfig(id="occ", lines=("flow",), classes=("car", "person"))
    return CameraConfig(
        id="cam",
        source={"url": "/videos/scene.mp4"},  # type: ignore[arg-type]
        timezone=str(rng.choice(["UTC", "America/New_York"])),
        zones=(zone,),
        lines=(line,),
        rules=RulesConfig(
            loitering=(loiter,),
            crowding=(crowd,),
            vehicle_flow=(flow,),
            occupancy=(occ,),
        ),
    )


@dataclass
class Obj:
    """One object of the scene: a path, a class and its track-id segments."""

    cls: int
    t0: float
    t1: float
    p0: np.ndarray
    vel: np.ndarray
    ids: list[tuple[float, int]] = field(default_factory=list)  # (from t, id)
    missing: bool = False
    blind: tuple[float, float] = (math.inf, math.inf)  # never detected in [t0, t1)

    def at(self, t: float, rng: np.random.Generator) -> tuple[float, float]:
        p = self.p0 + self.vel * (t - self.t0) + rng.normal(0.0, 0.4, 2)
        return float(np.clip(p[0], 0.0, 100.0)), float(np.clip(p[1], 0.0, 100.0))

    def tid(self, t: float) -> int:
        return next(i for s, i in reversed(self.ids) if s <= t)


def make_scene(rng: np.random.Generator) -> tuple[list[float], list[Obj]]:
    """Frame times (irregular, with gaps) and objects with id switches; half of
    the scenes also have a group standing in the zone."""
    times, t = [], 0.0
    length = float(rng.uniform(20.0, 60.0))
    while t < length:
        times.append(round(t, 4))
        t += float(rng.uniform(0.04, 0.5))
        if rng.random() < 0.01:
            t += float(rng.uniform(2.0, 20.0))  # the camera was away
    objs, next_id = [], 1
    for _ in range(int(rng.integers(1, 12))):
        t0 = float(rng.uniform(0.0, length * 0.8))
        t1 = float(min(length, t0 + rng.uniform(0.5, 30.0)))
        still = rng.random() < 0.4
        speed = 0.0 if still else float(rng.uniform(2.0, 25.0))
        ang = float(rng.uniform(0.0, 2.0 * np.pi))
        o = Obj(
            cls=CAR if rng.random() < 0.3 else PERSON,
            t0=t0,
            t1=t1,
            p0=rng.uniform(5.0, 95.0, 2),
            vel=speed * np.array([np.cos(ang), np.sin(ang)]),
        )
        o.ids.append((t0, next_id))
        next_id += 1
        for _ in range(int(rng.poisson(0.7))):  # id switches
            o.ids.append((float(rng.uniform(t0, t1)), next_id))
            next_id += 1
        o.ids.sort()
        objs.append(o)
    if rng.random() < 0.5:
        # A group standing together around (50, 55), inside every drawn zone.
        g0 = float(rng.uniform(0.0, length * 0.5))
        g1 = float(min(length, g0 + rng.uniform(2.0, 30.0)))
        for _ in range(int(rng.integers(2, 6))):
            o = Obj(
                cls=PERSON,
                t0=g0 + float(rng.uniform(0.0, 1.0)),
                t1=g1 - float(rng.uniform(0.0, 1.0)),
                p0=np.array([50.0, 55.0]) + rng.uniform(-6.0, 6.0, 2),
                vel=np.zeros(2),
            )
            o.ids.append((o.t0, next_id))
            next_id += 1
            objs.append(o)
    return times, objs


def swap_neighbours(objs: list[Obj], rng: np.random.Generator) -> None:
    """In half of the scenes with a standing group, a neighbour takes a member's id.

    Member B's id moves to member A at time ``s`` (B's own id stops there and is
    removed later); B is unseen for 0.1-1 s and then comes back under a new id.
    """
    group = [o for o in objs if not o.vel.any() and o.cls == PERSON]
    if len(group) < 2 or rng.random() >= 0.5:
        return
    a, b = (group[int(k)] for k in rng.choice(len(group), 2, replace=False))
    lo, hi = max(a.t0, b.t0) + 0.2, min(a.t1, b.t1) - 0.2
    if hi <= lo:
        return
    s = float(rng.uniform(lo, hi))
    back = s + float(rng.uniform(0.1, 1.0))
    a.ids = sorted([*a.ids, (s, b.tid(s))])
    b.ids = sorted([*b.ids, (back, 1 + max(i for o in objs for _, i in o.ids))])
    b.blind = (s, back)


@dataclass
class Checker:
    """Collects events and crossings and checks them as they come."""

    camera: CameraConfig
    msgs: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    restarted: bool = False
    crossings: list[tuple[int, str, int, str]] = field(default_factory=list)

    def events(self, evs: list[Event]) -> None:
        for e in evs:
            assert decode_event(encode_event(e)) == e
            self.msgs[str(e.event_id)].append(e)
        open_loiter = [
            m[-1].payload.tracker_id  # type: ignore[union-attr]
            for m in self.msgs.values()
            if m[0].kind is EventKind.LOITERING and m[-1].state is not EventState.END
        ]
        assert len(open_loiter) == len(set(open_loiter)), open_loiter
        open_crowd = [
            k
            for k, m in self.msgs.items()
            if m[0].kind is EventKind.CROWDING and m[-1].state is not EventState.END
        ]
        assert len(open_crowd) <= 1

    def finish(self) -> None:
        flow_rule = self.camera.rules.vehicle_flow[0]
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for key, m in self.msgs.items():
            revs = [e.revision for e in m]
            if self.restarted:  # a restored event skips a revision (monitor.state)
                assert revs[0] == 0 and all(
                    a < b for a, b in zip(revs, revs[1:], strict=False)
                ), key
            else:
                assert revs == list(range(len(m))), key
            assert all(a.ts <= b.ts for a, b in zip(m, m[1:], strict=False)), key
            states = [e.state for e in m]
            if states[0] is EventState.INSTANT:
                assert states == [EventState.INSTANT], key
            else:
                assert states[0] is EventState.START, (key, states)
                assert EventState.START not in states[1:], (key, states)
                assert EventState.END not in states[:-1], (key, states)
                # An occupancy day ends at the daily reset, not when traffic stops.
                if m[0].kind is not EventKind.OCCUPANCY:
                    assert states[-1] is EventState.END, (m[0].kind, states)
                if states[-1] is EventState.END:
                    assert m[-1].ended_at is not None
                    assert m[-1].ended_at >= m[0].started_at, key
            kind = m[0].kind
            pay = [e.payload for e in m]
            if kind is EventKind.LOITERING:
                rule = self.camera.rules.loitering[0]
                allowed = {rule.min_dwell_s} | {
                    s.min_dwell_s for s in rule.schedules if s.min_dwell_s is not None
                }
                assert pay[0].threshold_s in allowed  # type: ignore[union-attr]
                assert pay[0].dwell_s + 1e-6 >= pay[0].threshold_s  # type: ignore[union-attr]
                dwell = [p.dwell_s for p in pay]  # type: ignore[union-attr]
                assert dwell == sorted(dwell), (key, dwell)
            elif kind is EventKind.CROWDING:
                crowd = self.camera.rules.crowding[0]
                sizes = [crowd.min_count] + [
                    s.min_count for s in crowd.schedules if s.min_count is not None
                ]
                assert pay[0].count >= min(sizes), (key, pay[0])  # type: ignore[union-attr]
                for p in pay:
                    assert p.count <= p.max_count or m[-1].state is EventState.END  # type: ignore[union-attr]
                peak = [p.max_count for p in pay]  # type: ignore[union-attr]
                assert peak == sorted(peak), (key, peak)
                span = [p.duration_s for p in pay]  # type: ignore[union-attr]
                assert span == sorted(span), (key, span)
            elif kind is EventKind.VEHICLE_FLOW:
                for a, b in zip(pay, pay[1:], strict=False):
                    for cls, n in a.counts_in.items():  # type: ignore[union-attr]
                        assert b.counts_in.get(cls, 0) >= n  # type: ignore[union-attr]
                    for cls, n in a.counts_out.items():  # type: ignore[union-attr]
                        assert b.counts_out.get(cls, 0) >= n  # type: ignore[union-attr]
                last = pay[-1]
                span = last.bucket_end - last.bucket_start  # type: ignore[union-attr]
                assert span.total_seconds() == flow_rule.bucket_s
                for d, counts in (("in", last.counts_in), ("out", last.counts_out)):  # type: ignore[union-attr]
                    for cls, n in counts.items():
                        totals[(d, cls)] += n
            elif kind is EventKind.WRONG_WAY:
                p = pay[0]
                assert flow_rule.one_way is not None
                assert p.direction != flow_rule.one_way  # type: ignore[union-attr]
                assert p.class_name in flow_rule.wrong_way_classes  # type: ignore[union-attr]
            elif kind is EventKind.OCCUPANCY:
                for p in pay:
                    assert p.occupancy <= p.entered  # type: ignore[union-attr]
        counted: dict[tuple[str, str], int] = defaultdict(int)
        per_track: dict[tuple[int, str], int] = defaultdict(int)
        for tid, d, _, cls in self.crossings:
            counted[(d, cls)] += 1
            per_track[(tid, d)] += 1
        assert dict(totals) == dict(counted)
        assert max(per_track.values(), default=0) <= 1, per_track


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed-{s}" for s in SEEDS])
def test_rule_invariants(rt, tmp_path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    camera = make_camera(rng)
    pipes = build_pipelines(camera, COCO_CLASSES)
    flow = next(p for p in pipes if isinstance(p, VehicleFlowPipeline))
    # A third of the scenes run across the occupancy rule's daily reset (03:00 in
    # the camera's zone). A generator of its own, so the other draws (and the
    # regression seeds' scenes) stay as they were.
    ts0 = rt.TS0
    if np.random.default_rng([seed, 7]).random() < 0.33:
        tz = zoneinfo.ZoneInfo(camera.timezone)
        local = dt.datetime.fromtimestamp(rt.TS0, tz)
        reset = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(3), tz)
        ts0 = reset.timestamp() - float(np.random.default_rng([seed, 8]).uniform(5, 40))
    sim = rt.Sim(pipes, ts0=ts0)
    check = Checker(camera)
    times, objs = make_scene(rng)
    if seed not in REGRESSION_SEEDS:  # (their scenes stay as they found the bugs)
        swap_neighbours(objs, np.random.default_rng([seed, 9]))
    next_id = 1 + max(i for o in objs for _, i in o.ids)
    # Half the scenes restart the worker once: it is down for a while, the new one
    # restores the rule state (RuleStateStore, as monitor.worker does), ends what
    # nobody claims, bridges a short gap and sees everyone under new track ids.
    restart_at = restart_until = math.inf
    if rng.random() < 0.5 and len(times) > 8:
        restart_at = times[int(rng.integers(len(times) // 4, 3 * len(times) // 4))]
        restart_until = restart_at + float(rng.choice([0.3, 3.0, 12.0, 40.0]))
    check.restarted = restart_at < math.inf
    # A quarter of the scenes switch the camera to twice the resolution once
    # (zones and lines are relative; positions scale with the frame).
    resize_at = (
        times[int(rng.integers(1, len(times)))] if rng.random() < 0.25 else math.inf
    )
    scale = 1.0
    births: dict[int, tuple[float, float, float]] = {}
    removal: dict[int, float] = {}  # id -> time the tracker reports it removed
    for o in objs:
        ends = [s for s, _ in o.ids[1:]] + [o.t1]
        for (_, tid), end in zip(o.ids, ends, strict=True):
            # (an id a neighbour took lives on on them: the later end decides)
            removal[tid] = max(
                removal.get(tid, -math.inf), end + float(rng.uniform(0.0, 1.5))
            )
    reported: set[int] = set()
    open_events: dict[str, Event] = {}
    for t in times:
        if restart_at < t < restart_until:
            continue  # the worker is down
        if t >= restart_until:
            store = RuleStateStore(tmp_path / "cam.json", "cam")
            store.save(pipes, open_events, frame_ts=sim.ts0 + restart_at)
            pipes = build_pipelines(camera, COCO_CLASSES)
            flow = next(p for p in pipes if isinstance(p, VehicleFlowPipeline))
            sim.pipelines = pipes
            store = RuleStateStore(tmp_path / "cam.json", "cam")
            store.restore(pipes)
            open_events = store.claimed()
            orphans = store.orphans()
            check.events(orphans)
            for e in orphans:
                track_open_event(open_events, e)
            # The new worker's tracker is not simulated here (ids come from the
            # scene); a real one takes the pause along with the rules.
            parts = SimpleNamespace(tracker=Tracker(), pipelines=pipes)
            bridge_outage(camera, parts, t - restart_at, "of worker restart")  # type: ignore[arg-type]
            for o in objs:  # a new tracker: new ids; the old ones are never removed
                if o.t1 >= t:
                    for _, tid in o.ids:
                        removal[tid] = math.inf
                    o.ids = [(s_, i) for s_, i in o.ids if s_ > t]
                    o.ids.insert(0, (min(o.t0, t), next_id))
                    removal[next_id] = o.t1 + float(rng.uniform(0.0, 1.5))
                    next_id += 1
                    for k in range(1, len(o.ids)):
                        removal[o.ids[k - 1][1]] = o.ids[k][0] + 0.5
            restart_until = restart_at = math.inf
        if t >= resize_at:
            sim.image = np.zeros((2 * rt.H, 2 * rt.W, 3), np.uint8)
            scale, resize_at = 2.0, math.inf
        rows, shown = [], {}
        for o in objs:
            if not o.t0 <= t <= o.t1:
                continue
            # Detection misses come in bursts (a Markov chain per object).
            o.missing = rng.random() < (0.7 if o.missing else 0.1)
            if o.missing:
                continue
            if o.blind[0] <= t < o.blind[1]:
                continue
            tid = o.tid(t)
            if removal[tid] <= t:
                continue
            x, y = o.at(t, rng)
            x, y = x * scale, y * scale
            if tid not in births:
                births[tid] = (x, y, t)  # first detection: tentative, not reported
                continue
            rows.append((tid, x, y, o.cls))
            shown[tid] = births[tid]
        removed = [i for i, rt_ in removal.items() if rt_ <= t and i not in reported]
        reported.update(removed)
        removed = [i for i in removed if i not in shown]
        evs = sim.step(t, rows, removed, births=shown)
        check.events(evs)
        for e in evs:
            track_open_event(open_events, e)
        check.crossings.extend(
            (c.tracker_id, c.direction, 0, c.class_name) for c in flow.crossings
        )
    # Idle tail: everything leaves, the tracker reports the rest removed, and all
    # open events, episodes and buckets end.
    t_end = times[-1]
    rest = [i for i, r in removal.items() if i not in reported and r < math.inf]
    # 200 s a second, then every 10 s until the last count bucket is over.
    bucket_s = camera.rules.vehicle_flow[0].bucket_s
    tail = list(range(1, 200)) + list(range(200, bucket_s + 60, 10))
    for k in tail:
        check.events(sim.step(t_end + k, [], rest if k == 1 else []))
        check.crossings.extend(
            (c.tracker_id, c.direction, 0, c.class_name) for c in flow.crossings
        )
    check.finish()
    for p in pipes:
        if isinstance(p, LoiteringPipeline | VehicleFlowPipeline):
            assert len(p) == 0, (type(p).__name__, len(p))
        if isinstance(p, CrowdingPipeline):
            assert p.event_id is None

"""The peer comparison (``--peers``), error analysis (``--gap``) and ideal
trackers (``--ceiling``) of scripts/bench_events.py.

Peer counts are only comparable if supervision's ``LineZone`` gets the right
direction and the peers' tracks are removed as ours are; both are checked here on
tiny tables. The gap table must add up to the main table's loitering scores. The
ideal trackers must lose an identity exactly where their definition says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from config.schema import LineConfig
from monitor.types import Detections

ROOT = Path(__file__).resolve().parents[3]
LINE = LineConfig(id="x30", start=(0.3, 0.0), end=(0.3, 1.0), in_direction="right")
SIZE = (640, 480)


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("motmetrics")
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_events

    return bench_events


def walk(xs: list[float], tid: int = 1) -> list[Detections]:
    """One tracked person whose bottom-centre x goes through ``xs``, a frame each."""
    return [
        Detections(
            xyxy=np.array([[x - 10, 100.0, x + 10, 200.0]]),
            confidence=np.ones(1),
            class_id=np.zeros(1, np.int64),
            tracker_id=np.array([tid]),
        )
        for x in xs
    ]


@pytest.mark.parametrize(
    ("xs", "expected"),
    [
        ([150, 170, 210, 230], (1, 0)),  # our "in" (right) is sv's in or out: mapped
        ([230, 210, 170, 150], (0, 1)),
        # Jitter across the line: supervision counts every side flip (our rule
        # counts a track at most once per direction; see test_vehicle_flow.py).
        ([180, 200, 185, 199, 186, 201], (3, 2)),
    ],
)
def test_supervision_line_zone_direction_and_flips(bench, xs, expected) -> None:
    pytest.importorskip("supervision", reason="test extra not installed")
    assert bench.sv_line_counts(walk(xs), LINE, SIZE) == expected


def test_peer_tracks_are_removed_after_the_lost_buffer(bench) -> None:
    """Peers report no removals: an id is removed 1.5 s after it was last seen,
    as in the perfect-identity reference."""
    outs = [(np.array([7]), np.array([[0.0, 0, 10, 10]]))] * 5 + [
        (np.zeros(0, np.int64), np.zeros((0, 4)))
    ] * 60

    def run(frames, fps):
        assert len(frames) == 65 and fps == 25.0
        return outs, 0.0

    raw = {f: np.zeros((0, 6)) for f in range(1, 66)}
    tracked, removed = bench.peer_tracks(run, raw, 65, 25.0)
    assert [len(d) for d in tracked[:6]] == [1, 1, 1, 1, 1, 0]
    gone = [f for f, r in enumerate(removed, start=1) if r.size]
    # Last seen at frame 5 (0.2 s); removed on the first frame more than 1.5 s later.
    assert gone == [43] and removed[42].tolist() == [7]


def test_gap_table_adds_up_to_the_loitering_scores(bench, capsys) -> None:
    """``--gap``: the misses listed per true event are the true events the main
    table does not find, and the unmatched predictions are its false ones."""
    import motdata

    bench.gap_part([0], "hard")
    out = capsys.readouterr().out
    rows = [r.split("|")[1:-1] for r in out.splitlines() if r.startswith("| TUD")]
    per_event = [r for r in rows if len(r) == 4]
    kinds = [r for r in rows if len(r) == 3]
    missed = sum(int(r[2]) for r in per_event)
    unmatched = sum(int(r[2]) for r in kinds)
    tp = npred = ntrue = 0
    for seq, info in motdata.SEQUENCES.items():
        gt, n, _, _, true_ev = bench.ground_truth(seq)
        raw = motdata.noisy_detections(gt, "hard", 0, (info.width, info.height))
        tracked, removed = bench.track_noisy(raw, n, info.fps)
        pred = bench.run_loitering(seq, tracked, bench.MOT_ZONES[seq], removed)
        a, b, c = bench.match_events(true_ev, pred, bench.track_gt_map(tracked, gt))
        tp, npred, ntrue = tp + a, npred + b, ntrue + c
    assert len(per_event) == ntrue == 12
    assert missed == ntrue - tp and unmatched == npred - tp


def test_real_video_loitering_score(bench) -> None:
    """The concourse score: starts on the hand-checked group vs elsewhere, and how
    many of the four people have an open event once the threshold has passed."""
    x0, y0, x1, y1 = bench.GROUP_FEET_BOX
    inside = (0.5 * (x0 + x1), 0.5 * (y0 + y1))
    starts = [inside, inside, (x1 + 50.0, y1)]
    # Frames before the 3 s threshold are not scored; 5 open counts as 4.
    timeline = [(1.0, 0), (3.0, 2), (4.0, 4), (5.0, 5), (6.0, 1)]
    sc = bench.loiter_video_score(starts, timeline, threshold_s=3.0)
    assert (sc["events"], sc["on_group"], sc["elsewhere"]) == (3, 2, 1)
    assert sc["mean_open"] == pytest.approx((2 + 4 + 4 + 1) / 4)
    assert sc["all_open"] == pytest.approx(2 / 4)
    empty = bench.loiter_video_score([], [], threshold_s=3.0)
    assert (empty["events"], empty["mean_open"], empty["all_open"]) == (0, 0, 0)


def test_supervision_loitering_script(bench) -> None:
    """The peer's loitering step counts frames / fps since an id was first in the
    zone, never resets, alerts once per id, and an id switch starts from zero."""
    pytest.importorskip("supervision")
    poly = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]])
    inside, outside = [40.0, 20.0, 60.0, 50.0], [140.0, 20.0, 160.0, 50.0]

    def frame(*tracks):
        ids = np.array([t for t, _ in tracks], np.int64)
        boxes = np.array([b for _, b in tracks], np.float64).reshape(-1, 4)
        return ids, boxes

    # id 1 in the zone for frames 1-3, out on 4, back on 5-6; id 2 from frame 5.
    outs = [frame((1, inside))] * 3 + [frame((1, outside))]
    outs += [frame((1, inside), (2, inside))] * 2
    starts, timeline = bench.sv_loiter_script(
        outs, poly, timer_fps=1.0, video_fps=1.0, threshold_s=2.0
    )
    # id 1: 2 frames after its first in-zone frame = frame 3 (alerts once, the
    # exit did not reset it); id 2 would need frame 7.
    assert starts == [(50.0, 50.0)]
    assert timeline == [(0.0, 0), (1.0, 0), (2.0, 1), (3.0, 0), (4.0, 1), (5.0, 1)]
    # A header fps twice the real one halves the timer: id 1 alerts on frame 5.
    starts, timeline = bench.sv_loiter_script(
        outs, poly, timer_fps=2.0, video_fps=1.0, threshold_s=2.0
    )
    assert starts == [(50.0, 50.0)]
    assert timeline == [(0.0, 0), (1.0, 0), (2.0, 0), (3.0, 0), (4.0, 1), (5.0, 1)]


def person(x: float, gid: int) -> list[float]:
    """A noisy-detection row ``[x1, y1, x2, y2, score, gt_id]`` (40 x 100 px box)."""
    return [x, 100.0, x + 40.0, 200.0, 0.8, float(gid)]


def gt_row(x: float, gid: int) -> list[float]:
    """A ground-truth row ``[id, x1, y1, x2, y2]`` for the same box."""
    return [float(gid), x, 100.0, x + 40.0, 200.0]


# Person 5 detected on frames 1-3, undetected on 4-8 (a 5-frame gap, annotated
# throughout), detected on 9-10; a false positive on frame 2; person 6 annotated
# only on frame 9, either far away (x 400) or beside person 5 (x 30 of 40 px).
@pytest.mark.parametrize(
    ("max_gap", "crowd", "x6", "second_id_new"),
    [
        (None, 0.0, 400.0, False),  # perfect identities
        (5, 0.0, 400.0, False),  # the gap is not longer than 5 frames
        (4, 0.0, 400.0, True),  # it is longer than 4: a new id
        (4, 1.0, 400.0, False),  # longer, but nobody near: bridged
        (4, 1.0, 30.0, True),  # somebody within a box when he reappears
        (5, 1.0, 30.0, False),  # short gaps are never lost, crowd or not
    ],
)
def test_oracle_tracks_lose_ids_where_defined(
    bench, max_gap, crowd, x6, second_id_new
) -> None:
    raw = {f: np.zeros((0, 6)) for f in range(1, 11)}
    gt = {f: np.array([gt_row(0.0, 5)]) for f in range(1, 11)}
    for f in (1, 2, 3, 9, 10):
        raw[f] = np.array([person(0.0, 5)])
    raw[2] = np.array([person(0.0, 5), [300.0, 10.0, 340.0, 110.0, 0.9, -1.0]])
    gt[9] = np.array([gt_row(0.0, 5), gt_row(x6, 6)])
    tracked, removed = bench.oracle_tracks(raw, 10, 25.0, gt, max_gap, crowd)
    ids = [d.tracker_id.tolist() for d in tracked]
    assert ids[:3] == [[5], [5], [5]]  # the false positive is dropped
    assert ids[3:8] == [[]] * 5
    assert ids[8] == ids[9] and len(ids[8]) == 1
    assert (ids[8][0] != 5) is second_id_new
    assert not any(r.size for r in removed)  # 0.24 s without 5 < the 1.5 s buffer


def test_oracle_tracks_remove_ids_after_the_lost_buffer(bench) -> None:
    """The old id of a person who got a new one is removed like any other id:
    on the first frame more than 1.5 s after its last detection."""
    raw = {f: np.zeros((0, 6)) for f in range(1, 61)}
    gt = {f: np.array([gt_row(0.0, 5)]) for f in range(1, 61)}
    raw[1] = raw[2] = np.array([person(0.0, 5)])
    raw[50] = np.array([person(0.0, 5)])
    tracked, removed = bench.oracle_tracks(raw, 60, 25.0, gt, max_gap=10)
    gone = {f: r.tolist() for f, r in enumerate(removed, start=1) if r.size}
    assert gone == {40: [5]}  # last seen frame 2 (0.08 s); 40 is 1.6 s
    assert tracked[49].tracker_id.tolist() != [5]


def test_ceiling_table_rows(bench, capsys) -> None:
    """``--ceiling``: one row per ideal tracker, ours first; its perfect-identity
    row is the main table's reference (``track_noisy(oracle=True)``)."""
    import motdata

    bench.ceiling_part([0], "easy")
    rows = [
        [c.strip() for c in r.split("|")[1:-1]]
        for r in capsys.readouterr().out.splitlines()
        if r.startswith("| ") and not r.startswith("| tracks")
    ]
    assert [r[0] for r in rows] == ["hallmonitor", *bench.CEILING_TRACKERS]
    tp = npred = ntrue = 0
    for seq, info in motdata.SEQUENCES.items():
        gt, n, _, _, true_ev = bench.ground_truth(seq)
        raw = motdata.noisy_detections(gt, "easy", 0, (info.width, info.height))
        tracked, removed = bench.track_noisy(raw, n, info.fps, oracle=True)
        pred = bench.run_loitering(seq, tracked, bench.MOT_ZONES[seq], removed)
        a, b, c = bench.match_events(true_ev, pred, bench.track_gt_map(tracked, gt))
        tp, npred, ntrue = tp + a, npred + b, ntrue + c
    perfect = rows[1]
    assert perfect[1:3] == [f"{tp / npred:.3f}", f"{tp / ntrue:.3f}"]
    assert all(r[4] in ("met", "missed") for r in rows)

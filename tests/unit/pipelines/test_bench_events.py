"""The peer comparison (``--peers``) and error analysis (``--gap``) of
scripts/bench_events.py.

Peer counts are only comparable if supervision's ``LineZone`` gets the right
direction and the peers' tracks are removed as ours are; both are checked here on
tiny tables. The gap table must add up to the main table's loitering scores.
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

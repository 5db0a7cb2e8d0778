"""Image-level camera health: frozen, black, uniform, sudden scene change (tamper).

A source that delivers frames can still be useless: a decoder repeating the last image
(frozen), a covered lens (black), a blinded or defocused sensor (uniform), a camera
turned away or spray-painted (sudden scene change). :class:`FrameHealth` checks each
sampled frame on a tiny grey copy (64 px wide by default, area-averaged, which also
averages out sensor noise) and reports *transitions* only.

All timing comes from ``frame.mono``; the class does no I/O and reads no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from monitor.motion import shrink
from monitor.types import Frame

__all__ = ["FrameHealth", "HealthChange", "HealthConfig"]


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds (grey levels 0-255, seconds).

    Attributes:
        width: Width of the grey copy, pixels.
        black_mean: Mean grey below which a low-contrast image counts as black.
        uniform_std: Grey standard deviation below which the image is featureless.
        frozen_mean_diff: Mean absolute difference to the previous sampled frame below
            which two frames count as identical (a live sensor never is).
        frozen_s: Seconds of identical frames before "frozen".
        persist_s: Seconds a black/uniform image must last before it is reported.
        tamper_corr: Correlation with the usual view below which the scene "changed".
        change_level: Grey levels a pixel must differ from the usual view by to count
            as changed.
        tamper_changed_frac: Fraction of changed pixels above which (together with a
            low correlation) the scene changed.
        tamper_persist_s: Seconds the change must last (passers-by close to the lens
            do not count).
        background_tau_s: Time constant of the usual-view average, seconds.
    """

    width: int = 64
    black_mean: float = 25.0
    uniform_std: float = 6.0
    frozen_mean_diff: float = 0.05
    frozen_s: float = 10.0
    persist_s: float = 2.0
    tamper_corr: float = 0.25
    change_level: float = 25.0
    tamper_changed_frac: float = 0.3
    tamper_persist_s: float = 1.0
    background_tau_s: float = 30.0


@dataclass(frozen=True)
class HealthChange:
    """A reported transition.

    Attributes:
        status: ``frozen`` | ``black`` | ``uniform`` | ``tamper`` |
            ``resolution_change`` | ``online`` (the image is fine again).
        message: Human-readable detail.
        ts: Wall-clock time of the frame that triggered it.
    """

    status: str
    message: str
    ts: float


class FrameHealth:
    """Stateful per-camera image checks; call :meth:`update` on each sampled frame.

    Args:
        cfg: Thresholds; defaults suit 1-30 fps sampling.
    """

    def __init__(self, cfg: HealthConfig | None = None) -> None:
        self.cfg = cfg or HealthConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything (new stream)."""
        self._wh: tuple[int, int] | None = None
        self._prev: npt.NDArray[np.float32] | None = None
        self._bg: npt.NDArray[np.float32] | None = None
        self._bg_mono: float | None = None
        self._same_since: float | None = None
        self._cond: str | None = None  # candidate condition and since when
        self._cond_since: float | None = None
        self._reported: str | None = None  # condition currently reported
        self._reported_since = 0.0
        self._tamper_since: float | None = None
        self.last_scores: dict[str, float] = {}

    def _small(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        # Grey on ~2k pixels only, after the shared cheap downscale.
        small = shrink(image, self.cfg.width)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)

    def update(self, frame: Frame) -> list[HealthChange]:
        """Check one frame.

        Args:
            frame: The sampled frame; ``image`` is ``(H, W, 3)`` uint8 BGR.

        Returns:
            Transitions caused by this frame (usually empty).
        """
        cfg = self.cfg
        out: list[HealthChange] = []
        now = frame.mono
        wh = frame.resolution_wh
        if self._wh is not None and wh != self._wh:
            out.append(
                HealthChange(
                    "resolution_change",
                    f"resolution changed from {self._wh[0]}x{self._wh[1]} "
                    f"to {wh[0]}x{wh[1]}",
                    frame.ts,
                )
            )
            self._prev = self._bg = None
            self._same_since = self._tamper_since = None
        self._wh = wh
        g = self._small(frame.image)
        mean = float(g.mean())
        std = float(g.std())
        # Frozen: consecutive sampled frames (practically) identical.
        if self._prev is not None and self._prev.shape == g.shape:
            diff = float(np.abs(g - self._prev).mean())
            if diff <= cfg.frozen_mean_diff:
                if self._same_since is None:
                    self._same_since = now
            else:
                self._same_since = None
        else:
            diff = math.inf
        self._prev = g
        if std < cfg.uniform_std:
            cond: str | None = "black" if mean < cfg.black_mean else "uniform"
            hold = cfg.persist_s
        elif self._same_since is not None:
            cond, hold = "frozen", cfg.frozen_s
            # Identical frames count from the first identical pair.
            if self._cond != "frozen":
                self._cond, self._cond_since = "frozen", self._same_since
        else:
            cond, hold = None, 0.0
        if cond != self._cond:
            self._cond, self._cond_since = cond, now
        corr, changed = self._scene_change(g, std)
        self.last_scores = {
            "mean": mean, "std": std, "diff": diff, "corr": corr, "changed": changed
        }  # fmt: skip
        if cond is not None and self._reported != cond:
            held = now - (self._cond_since or now)
            if held >= hold:
                msg = {
                    "black": f"image black (mean grey {mean:.0f}) for {held:.1f} s: "
                    "lens covered or camera dark",
                    "uniform": f"image featureless (grey std {std:.1f}) for "
                    f"{held:.1f} s: blinded, defocused or covered",
                    "frozen": f"image frozen: identical frames for {held:.1f} s",
                }[cond]
                out.append(HealthChange(cond, msg, frame.ts))
                self._reported, self._reported_since = cond, now
        elif cond is None and self._reported is not None:
            out.append(
                HealthChange(
                    "online",
                    f"image ok again (was {self._reported} for "
                    f"{now - self._reported_since:.1f} s)",
                    frame.ts,
                )
            )
            self._reported = None
        if cond is None:
            out += self._tamper(g, corr, changed, now, frame.ts)
        return out

    def _scene_change(
        self, g: npt.NDArray[np.float32], std: float
    ) -> tuple[float, float]:
        """``(correlation, changed fraction)`` against the usual view.

        Both are insensitive to global brightness (means removed): the correlation
        drops when structure changes; the changed fraction says how much of the image
        changed by more than ``change_level`` grey levels. A crowd lowers the first
        but not the second much; a moved or covered camera lowers both.
        """
        bg = self._bg
        if bg is None or bg.shape != g.shape or std < self.cfg.uniform_std:
            return 1.0, 0.0
        a = g - g.mean()
        b = bg - bg.mean()
        den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
        corr = float((a * b).sum()) / den if den > 0 else 1.0
        changed = float((np.abs(a - b) > self.cfg.change_level).mean())
        return corr, changed

    def _tamper(
        self,
        g: npt.NDArray[np.float32],
        corr: float,
        changed: float,
        now: float,
        ts: float,
    ) -> list[HealthChange]:
        cfg = self.cfg
        out: list[HealthChange] = []
        if self._bg is None or self._bg.shape != g.shape:
            self._bg, self._bg_mono = g.copy(), now
            return out
        if corr < cfg.tamper_corr and changed > cfg.tamper_changed_frac:
            if self._tamper_since is None:
                self._tamper_since = now
            if now - self._tamper_since >= cfg.tamper_persist_s:
                out.append(
                    HealthChange(
                        "tamper",
                        f"scene changed suddenly ({changed:.0%} of the image differs, "
                        f"correlation {corr:.2f} with the usual view): camera moved, "
                        "blocked or re-aimed?",
                        ts,
                    )
                )
                # The new view becomes the usual one: report a move once.
                self._bg, self._bg_mono = g.copy(), now
                self._tamper_since = None
            return out  # the usual view does not learn the suspicious frames
        self._tamper_since = None
        dt = max(0.0, now - (self._bg_mono or now))
        alpha = 1.0 - math.exp(-dt / cfg.background_tau_s)
        self._bg += alpha * (g - self._bg)
        self._bg_mono = now
        return out

"""Letterbox resize into a network input, and the inverse mapping for boxes.

Two conventions exist among the supported models:

* centred (Ultralytics YOLOv5/v8/11): the resized image sits in the middle of the
  canvas, padding split between both sides (``round(pad / 2 -/+ 0.1)``);
* top-left (YOLOX): the resized image sits at ``(0, 0)``, padding right and bottom.

Both pad with grey 114 and resize with bilinear interpolation, as their training code
does; matching that exactly is what keeps our boxes within a pixel of the reference
implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "LetterboxInfo",
    "letterbox_blob_into",
    "letterbox_into",
    "placement",
    "unletterbox",
]


@dataclass(frozen=True, slots=True)
class LetterboxInfo:
    """How one image was placed on the canvas.

    Attributes:
        scale: Resize gain (network pixels per original pixel).
        pad_x: Left padding in network pixels.
        pad_y: Top padding in network pixels.
        orig_wh: ``(width, height)`` of the original image.
    """

    scale: float
    pad_x: float
    pad_y: float
    orig_wh: tuple[int, int]


def placement(
    w0: int, h0: int, cw: int, ch: int, centred: bool
) -> tuple[float, int, int, int, int]:
    """Where a ``w0 x h0`` image goes on a ``cw x ch`` canvas.

    Returns:
        ``(scale, new_w, new_h, left, top)``.
    """
    r = min(ch / h0, cw / w0)
    if centred:
        # Ultralytics LetterBox: round the unpadded size, split padding -/+ 0.1
        nw, nh = int(round(w0 * r)), int(round(h0 * r))
    else:
        # YOLOX preproc: truncate
        nw, nh = int(w0 * r), int(h0 * r)
    # extreme aspect ratios would round a side to 0 px
    nw, nh = min(max(nw, 1), cw), min(max(nh, 1), ch)
    if centred:
        dw, dh = (cw - nw) / 2, (ch - nh) / 2
        top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    else:
        top = left = 0
    return r, nw, nh, left, top


def _resized(image: npt.NDArray[np.uint8], nw: int, nh: int) -> npt.NDArray[np.uint8]:
    if (nw, nh) == (image.shape[1], image.shape[0]):
        return image
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return cast("npt.NDArray[np.uint8]", resized)


def letterbox_into(
    image: npt.NDArray[np.uint8],
    canvas: npt.NDArray[np.uint8],
    centred: bool,
    pad_value: int = 114,
) -> LetterboxInfo:
    """Resize ``image`` keeping its aspect ratio and write it into ``canvas``.

    Args:
        image: ``(H, W, 3)`` uint8 image (any memory layout).
        canvas: ``(h, w, 3)`` uint8 network-sized buffer, overwritten in place.
        centred: Centre the image (Ultralytics) instead of top-left (YOLOX).
        pad_value: Grey level of the padding.

    Returns:
        The placement, for :func:`unletterbox`.
    """
    h0, w0 = image.shape[:2]
    r, nw, nh, left, top = placement(w0, h0, canvas.shape[1], canvas.shape[0], centred)
    canvas[...] = pad_value
    canvas[top : top + nh, left : left + nw] = _resized(image, nw, nh)
    return LetterboxInfo(scale=r, pad_x=float(left), pad_y=float(top), orig_wh=(w0, h0))


def letterbox_blob_into(
    image: npt.NDArray[np.uint8],
    blob: npt.NDArray[np.floating],
    centred: bool,
    rgb: bool,
    scale: float,
    pad_value: int = 114,
) -> LetterboxInfo:
    """Letterbox straight into a network input tensor (no intermediate canvas).

    Equivalent to :func:`letterbox_into` followed by channel reorder, HWC -> CHW and
    ``* scale``, but touches each output value once: ``cv2.split`` gives contiguous
    planes, each is scaled into its place in ``blob`` (about 3x faster than a
    strided transpose of a canvas).

    Args:
        image: ``(H, W, 3)`` uint8 BGR image.
        blob: ``(3, h, w)`` float buffer for one network input, overwritten.
        centred: Centre the image (Ultralytics) instead of top-left (YOLOX).
        rgb: Write planes in RGB order (else BGR).
        scale: Multiply pixel values by this (``1/255`` or ``1``).
        pad_value: Grey level of the padding (before scaling).

    Returns:
        The placement, for :func:`unletterbox`.
    """
    h0, w0 = image.shape[:2]
    ch, cw = blob.shape[1:]
    r, nw, nh, left, top = placement(w0, h0, cw, ch, centred)
    planes = cv2.split(_resized(image, nw, nh))
    if rgb:
        planes = planes[::-1]
    pad = blob.dtype.type(pad_value * scale)
    # padding strips only: the image area is written below
    blob[:, :top] = pad
    blob[:, top + nh :] = pad
    blob[:, top : top + nh, :left] = pad
    blob[:, top : top + nh, left + nw :] = pad
    s = blob.dtype.type(scale)
    for k, plane in enumerate(planes):
        dst = blob[k, top : top + nh, left : left + nw]
        if scale == 1.0:
            np.copyto(dst, plane, casting="unsafe")
        else:
            np.multiply(plane, s, out=dst, casting="unsafe")
    return LetterboxInfo(scale=r, pad_x=float(left), pad_y=float(top), orig_wh=(w0, h0))


def unletterbox(
    xyxy: npt.NDArray[np.float32], info: LetterboxInfo
) -> npt.NDArray[np.float32]:
    """Map boxes from network pixels back to original pixels, clipped to the image.

    Args:
        xyxy: ``(N, 4)`` boxes in network input pixels.
        info: Placement returned by :func:`letterbox_into`.

    Returns:
        ``(N, 4)`` float32 boxes in original image pixels.
    """
    pad = np.array([info.pad_x, info.pad_y, info.pad_x, info.pad_y], np.float32)
    out = (xyxy - pad) / np.float32(info.scale)
    w, h = info.orig_wh
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out.astype(np.float32, copy=False)

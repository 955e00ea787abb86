"""Annotators: the source image turned into the control map a ControlNet was trained on.

``canny`` (OpenCV, thresholds 100/200 as the AI Horde's worker) and ``scribble`` (a dark-on-light drawing
inverted into white strokes, as ControlNet's scribble demo) need no weights. The others run networks whose
weights are loaded from the annotator folder: M-LSD (``hough``, as the AI Horde), HED (``hed``,
``fakescribbles``), MiDaS (``depth``, ``normal``), OpenPose (``openpose``) and UperNet (``seg``). Without
M-LSD's weights ``hough`` falls back on OpenCV's probabilistic Hough transform on Canny edges, drawn as white
straight lines on black: the same kind of map, from a classical line detector (and a warning in the log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from openhorde.worker.controlnet import names

logger = logging.getLogger(__name__)

CANNY_LOW, CANNY_HIGH = 100, 200
HOUGH_THRESHOLD = 50
"""Votes a line needs; the two lengths below scale with the image's short side."""
HOUGH_MIN_LENGTH = 0.05
HOUGH_MAX_GAP = 0.01
Annotate = Callable[[Image.Image], Image.Image]


class AnnotatorUnavailable(LookupError):
    """A control type whose annotator is not loaded on this worker."""


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB")


def canny(image: Image.Image) -> Image.Image:
    """White Canny edges on black."""
    return _grey_to_rgb(cv2.Canny(_rgb(image), CANNY_LOW, CANNY_HIGH))


def scribble(image: Image.Image) -> Image.Image:
    """A user's drawing (dark strokes on a light ground) as white strokes on black."""
    pixels = _rgb(image)
    return _grey_to_rgb(np.where(pixels.min(axis=2) <= 127, 255, 0).astype(np.uint8))


def hough(image: Image.Image) -> Image.Image:
    """The straight lines of the image, white on black (OpenCV's probabilistic Hough transform; M-LSD's stand-in)."""
    pixels = _rgb(image)
    edges = cv2.Canny(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), CANNY_LOW, CANNY_HIGH)
    side = min(pixels.shape[:2])
    lines = cv2.HoughLinesP(
        edges,
        rho=1,
        theta=np.pi / 180,
        threshold=HOUGH_THRESHOLD,
        minLineLength=max(4, int(side * HOUGH_MIN_LENGTH)),
        maxLineGap=max(1, int(side * HOUGH_MAX_GAP)),
    )
    canvas = np.zeros(pixels.shape[:2], dtype=np.uint8)
    for x1, y1, x2, y2 in lines[:, 0] if lines is not None else ():
        cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 255, 1)
    return _grey_to_rgb(canvas)


class Annotators:
    """The annotators a worker has: the weight-free ones always, the others when their weights loaded."""

    def __init__(self, annotate: dict[str, Annotate]) -> None:
        self._annotate = {"canny": canny, "scribble": scribble, "hough": hough, **annotate}

    @classmethod
    def load(cls, folder: Path, device: torch.device, types: Iterable[str] = names.CONTROL_TYPES) -> Annotators:
        """The annotators for ``types`` whose weights are in ``folder``; a missing or bad one is logged and left out."""
        loaders: dict[str, Callable[[Path, torch.device], dict[str, Annotate]]] = {
            "mlsd": _load_mlsd,
            "hed": _load_hed,
            "depth": _load_depth,
            "openpose": _load_openpose,
            "seg": _load_seg,
        }
        family = {"hough": "mlsd", "fakescribbles": "hed", "normal": "depth"}
        wanted = {family.get(kind, kind) for kind in types} & set(loaders)
        annotate: dict[str, Annotate] = {}
        for name in sorted(wanted):
            try:
                annotate.update(loaders[name](folder, device))
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                fallback = "; hough uses OpenCV's Hough transform instead" if name == "mlsd" else ""
                logger.warning("The %s annotator is not available: %s%s", name, exc, fallback)
        return cls(annotate)

    @property
    def types(self) -> list[str]:
        """The control types this worker can make maps for."""
        return [kind for kind in names.CONTROL_TYPES if kind in self._annotate]

    def __call__(self, control_type: str, image: Image.Image) -> Image.Image:
        """The control map of ``image`` for ``control_type``, at the image's size, RGB."""
        annotate = self._annotate.get(control_type)
        if annotate is None:
            raise AnnotatorUnavailable(f"the {control_type} annotator is not loaded on this worker")
        return annotate(image.convert("RGB"))


def _require(folder: Path, files: tuple[names.AnnotatorFile, ...]) -> list[Path]:
    paths = [folder / file.path for file in files]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
    return paths


def _load_mlsd(folder: Path, device: torch.device) -> dict[str, Annotate]:
    from openhorde.worker.controlnet.mlsd import line_map, load_mlsd

    (path,) = _require(folder, names.MLSD_FILES)
    network = load_mlsd(path, device)
    return {"hough": lambda image: _grey_to_rgb(line_map(network, _rgb(image)))}


def _load_hed(folder: Path, device: torch.device) -> dict[str, Annotate]:
    from openhorde.worker.controlnet.hed import fake_scribble, hed_edges, load_hed

    (path,) = _require(folder, names.HED_FILES)
    network = load_hed(path, device)
    return {
        "hed": lambda image: _grey_to_rgb(hed_edges(network, _rgb(image))),
        "fakescribbles": lambda image: _grey_to_rgb(fake_scribble(hed_edges(network, _rgb(image)))),
    }


def _load_depth(folder: Path, device: torch.device) -> dict[str, Annotate]:
    from openhorde.worker.controlnet.depth import depth_map, estimate_depth, load_depth_model, normal_map

    config, _weights = _require(folder, names.DEPTH_FILES)
    model = load_depth_model(config.parent, device)
    return {
        "depth": lambda image: _grey_to_rgb(depth_map(estimate_depth(model, image))),
        "normal": lambda image: Image.fromarray(normal_map(estimate_depth(model, image)), "RGB"),
    }


def _load_openpose(folder: Path, device: torch.device) -> dict[str, Annotate]:
    from openhorde.worker.controlnet.openpose import draw_pose, estimate_pose, load_body_model

    (path,) = _require(folder, names.OPENPOSE_FILES)
    model = load_body_model(path, device)

    def annotate(image: Image.Image) -> Image.Image:
        pixels = _rgb(image)
        return Image.fromarray(draw_pose(pixels.shape[:2], *estimate_pose(model, pixels)), "RGB")

    return {"openpose": annotate}


def _load_seg(folder: Path, device: torch.device) -> dict[str, Annotate]:
    from openhorde.worker.controlnet.seg import load_seg_model, segment

    config, _weights = _require(folder, names.SEG_FILES)
    model: Any = load_seg_model(config.parent, device)
    return {"seg": lambda image: Image.fromarray(segment(model, image), "RGB")}

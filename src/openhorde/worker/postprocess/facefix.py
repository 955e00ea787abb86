"""Face fixing: find the faces (OpenCV's frontal-face cascade), restore each one with GFPGAN or CodeFormer at
512×512, and blend it back into the image.

The AI Horde's workers find faces with facexlib's RetinaFace, which needs torchvision and its own weights;
OpenCV's cascade ships inside ``opencv-python-headless`` and needs nothing more. It finds fewer faces at
odd angles; an image in which it finds none comes back unchanged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2 as _cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError, load_descriptor
from openhorde.worker.postprocess.tensors import to_image, to_tensor

cv2: Any = _cv2  # OpenCV 5's bundled stubs leave out cv2.data and CascadeClassifier

FACE_SIZE = 512
"""The restorers' input and output side, in pixels."""
CROP_FACTOR = 2.0
"""The square cropped around a detected face is this many times the face's box: the restorers were trained on
faces that fill about half of the frame."""
MIN_FACE_PIXELS = 32
"""Smaller detections are ignored (too small to restore, and most are false)."""
FEATHER_FRACTION = 0.1
"""The blend mask's soft edge, as a fraction of the crop's side."""
FaceBox = tuple[int, int, int, int]
"""``(left, top, width, height)`` of one face, in pixels."""


class FaceDetector:
    """OpenCV's Haar cascade for frontal faces (the file ships with OpenCV)."""

    def __init__(self) -> None:
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(cascade))
        if self._cascade.empty():
            raise PostProcessorLoadError(f"{cascade}: OpenCV's face cascade could not be read")
        # OpenCV does not promise that one classifier may detect in two threads at once, and an alchemist beside
        # image generation shares the face fixers with it.
        self._lock = threading.Lock()

    def __call__(self, image: Image.Image) -> list[FaceBox]:
        """The faces in ``image``, largest first."""
        grey = np.asarray(image.convert("L"))
        with self._lock:
            found = self._cascade.detectMultiScale(
                grey, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE_PIXELS, MIN_FACE_PIXELS)
            )
        boxes = [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)


@dataclass
class FaceFixer:
    """A loaded face restorer (``GFPGAN`` or ``CodeFormers``) and the face detector feeding it."""

    name: str
    descriptor: Any
    detector: FaceDetector

    @classmethod
    def load(cls, name: str, path: Path, device: torch.device) -> FaceFixer:
        """The restorer in ``path``; refuses weights that are not a GFPGAN or CodeFormer model."""
        descriptor = load_descriptor(path, device)
        if descriptor.architecture.id not in ("GFPGAN", "CodeFormer"):
            raise PostProcessorLoadError(f"{path}: a {descriptor.architecture.name} model is not a face restorer")
        return cls(name, descriptor, FaceDetector())

    def __call__(self, image: Image.Image, strength: float) -> Image.Image:
        """``image`` with every face found restored; ``strength`` 0 keeps the faces, 1 takes the restorer's."""
        boxes = self.detector(image)
        if not boxes:
            return image
        return self.restore(image, boxes, strength)

    def restore(self, image: Image.Image, boxes: list[FaceBox], strength: float) -> Image.Image:
        """``image`` with the faces in ``boxes`` restored and feathered back in (alpha is kept as it was)."""
        result = image.convert("RGB")
        for box in boxes:
            crop_box = _crop_box(box)
            face = result.crop(crop_box)  # parts outside the image come back black; they are masked away below
            restored = self._restore_face(face.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS), strength)
            restored = restored.resize(face.size, Image.Resampling.LANCZOS)
            result.paste(restored, crop_box[:2], _feather_mask(face.size))
        if image.mode == "RGBA":
            result.putalpha(image.getchannel("A"))
        return result

    def _restore_face(self, face: Image.Image, strength: float) -> Image.Image:
        """One 512×512 face through the restorer; both models work in ``[-1, 1]``."""
        model = self.descriptor.model
        with torch.inference_mode():
            source = to_tensor(face, torch.device(self.descriptor.device)) * 2 - 1
            if self.descriptor.architecture.id == "CodeFormer":
                # CodeFormer's own knob: weight 1 keeps the most of the input face, 0 the most of its codebook.
                output = model(source, weight=1.0 - strength)[0]
            else:
                output = model(source, return_rgb=False)[0]
                output = source + (output - source) * strength
            return to_image((output + 1) / 2)


def _crop_box(box: FaceBox) -> tuple[int, int, int, int]:
    """The square around a face, ``CROP_FACTOR`` times its box, as a PIL crop box (it may reach outside)."""
    left, top, width, height = box
    side = round(max(width, height) * CROP_FACTOR)
    centre_x, centre_y = left + width / 2, top + height / 2
    crop_left, crop_top = round(centre_x - side / 2), round(centre_y - side / 2)
    return crop_left, crop_top, crop_left + side, crop_top + side


def _feather_mask(size: tuple[int, int]) -> Image.Image:
    """A mask that is opaque in the middle and fades to nothing at the edges, so no seam shows."""
    width, height = size
    edge = max(1, round(min(size) * FEATHER_FRACTION))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((edge, edge, width - 1 - edge, height - 1 - edge), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(edge / 2))

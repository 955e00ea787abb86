"""The AI Horde's control types, the model reference entries their ControlNets are in, and the annotators' files.

No torch here: the job parser and the settings import this cheaply. ControlNet weights are the model
reference's ``controlnet.json`` entries (``control_<type>`` for SD 1, ``control_<type>_sd2`` for SD 2, as the
AI Horde's worker maps them); they are kept in ``<model store>/controlnet/`` under the reference's file names.
Annotator weights are those of lllyasviel's ``Annotators`` collection and the transformers checkpoints of the
same networks; they are kept in ``<model store>/controlnet/annotators/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ControlType = Literal["canny", "hed", "depth", "normal", "openpose", "seg", "scribble", "fakescribbles", "hough"]
CONTROL_TYPES: tuple[ControlType, ...] = (
    "canny",
    "hed",
    "depth",
    "normal",
    "openpose",
    "seg",
    "scribble",
    "fakescribbles",
    "hough",
)
DEFAULT_CONTROLNET_REFERENCE = (
    "https://raw.githubusercontent.com/Haidra-Org/AI-Horde-image-model-reference/main/controlnet.json"
)
CONTROLNET_FOLDER = "controlnet"
ANNOTATOR_FOLDER = f"{CONTROLNET_FOLDER}/annotators"
BASELINE_SUFFIX = {"sd1": "", "sd2": "_sd2"}
"""Baselines with ControlNets in the reference and their entries' suffix (it has no SDXL ones for these types)."""


def reference_entry(control_type: str, baseline: str) -> str | None:
    """The ``controlnet.json`` entry with the ControlNet for ``control_type`` on ``baseline`` (None: there is none)."""
    suffix = BASELINE_SUFFIX.get(baseline)
    return None if suffix is None else f"control_{control_type}{suffix}"


@dataclass(frozen=True)
class AnnotatorFile:
    """One file of an annotator's weights: where it lives under the annotator folder and where it comes from."""

    path: str
    url: str


_ANNOTATORS = "https://huggingface.co/lllyasviel/Annotators/resolve/main"
_DPT = "https://huggingface.co/Intel/dpt-hybrid-midas/resolve/main"
_UPERNET = "https://huggingface.co/openmmlab/upernet-convnext-small/resolve/main"
HED_FILES = (AnnotatorFile("ControlNetHED.pth", f"{_ANNOTATORS}/ControlNetHED.pth"),)
MLSD_FILES = (AnnotatorFile("mlsd_large_512_fp32.pth", f"{_ANNOTATORS}/mlsd_large_512_fp32.pth"),)
OPENPOSE_FILES = (AnnotatorFile("body_pose_model.pth", f"{_ANNOTATORS}/body_pose_model.pth"),)
DEPTH_FILES = (
    AnnotatorFile("dpt-hybrid-midas/config.json", f"{_DPT}/config.json"),
    AnnotatorFile("dpt-hybrid-midas/pytorch_model.bin", f"{_DPT}/pytorch_model.bin"),
)
SEG_FILES = (
    AnnotatorFile("upernet-convnext-small/config.json", f"{_UPERNET}/config.json"),
    AnnotatorFile("upernet-convnext-small/pytorch_model.bin", f"{_UPERNET}/pytorch_model.bin"),
)
ANNOTATOR_FILES: dict[ControlType, tuple[AnnotatorFile, ...]] = {
    "canny": (),
    "scribble": (),
    "hough": MLSD_FILES,
    "hed": HED_FILES,
    "fakescribbles": HED_FILES,
    "depth": DEPTH_FILES,
    "normal": DEPTH_FILES,
    "openpose": OPENPOSE_FILES,
    "seg": SEG_FILES,
}
"""The weights each control type's annotator needs (canny and scribble are plain image processing; hough falls
back on OpenCV's Hough transform without M-LSD's)."""

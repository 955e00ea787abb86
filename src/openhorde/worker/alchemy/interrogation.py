"""The ``interrogation`` form: the terms of each category (``terms.py``) that CLIP finds closest to the image.

The result has the AI Horde's shape: ``{category: [{"text": term, "confidence": score}, …]}``, best first,
where the score is the cosine similarity of the image's and the term's CLIP embeddings, in percent. The
reference's ``clip.json`` names OpenAI's TorchScript ``ViT-L-14.pt`` (read by open_clip, which this project
does not install); the worker loads a transformers ``CLIPModel`` folder instead (``interrogation_model``: e.g.
``openai/clip-vit-large-patch14`` saved with ``save_pretrained``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from openhorde.worker.alchemy.loading import AlchemyModelError, checked_folder, image_processor
from openhorde.worker.alchemy.terms import TERMS

TOP_TERMS = 5
"""Terms kept per category: what a client shows, and it keeps the result far below the horde's size limit."""
TEXT_BATCH = 64
"""Terms embedded at once when the model loads."""

Ranking = dict[str, list[dict[str, str | float]]]


@dataclass
class Interrogator:
    """A loaded CLIP model, and every term's embedding computed once at load (the lists never change)."""

    model: Any
    images: Any
    device: torch.device
    terms: Mapping[str, tuple[str, ...]]
    embeddings: dict[str, torch.Tensor]

    @classmethod
    def from_pretrained(
        cls, folder: Path, device: torch.device, terms: Mapping[str, tuple[str, ...]] = TERMS
    ) -> Interrogator:
        """The CLIP model saved in ``folder`` (transformers layout), on ``device``, with ``terms`` embedded."""
        from transformers import AutoTokenizer, CLIPModel

        checked_folder(folder, "interrogation_model")
        try:
            # Typed Any: transformers' stubs type ``.to`` as taking a model, not a device.
            model: Any = CLIPModel.from_pretrained(str(folder), local_files_only=True)
            model = model.to(device).eval()
            images = image_processor("CLIP", folder)
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise AlchemyModelError(f"interrogation_model {folder}: {exc}") from exc
        embeddings = {name: _embed_texts(model, tokenizer, list(texts), device) for name, texts in terms.items()}
        return cls(model, images, device, dict(terms), embeddings)

    def interrogate(self, image: Image.Image, top: int = TOP_TERMS) -> Ranking:
        """The ``top`` terms of each category, best first, with their similarity to ``image`` in percent."""
        pixels = self.images(images=image.convert("RGB"), return_tensors="pt").pixel_values
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            features = _features(self.model.get_image_features(pixel_values=pixels.to(self.device, dtype)))
        query = torch.nn.functional.normalize(features.float(), dim=-1)[0]
        ranking: Ranking = {}
        for name, embedded in self.embeddings.items():
            scores = (embedded @ query).tolist()
            best = sorted(zip(self.terms[name], scores, strict=True), key=lambda pair: pair[1], reverse=True)
            ranking[name] = [{"text": text, "confidence": round(score * 100, 2)} for text, score in best[:top]]
        return ranking


def _features(output: Any) -> torch.Tensor:
    """The projected embedding: transformers 5 wraps it in a model output (``pooler_output``), 4 returned it bare."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _embed_texts(model: Any, tokenizer: Any, texts: list[str], device: torch.device) -> torch.Tensor:
    """Unit-length CLIP embeddings of ``texts``, one row each."""
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), TEXT_BATCH):
            tokens = tokenizer(texts[start : start + TEXT_BATCH], padding=True, truncation=True, return_tensors="pt")
            rows.append(_features(model.get_text_features(**tokens.to(device))).float())
    return torch.nn.functional.normalize(torch.cat(rows), dim=-1)

"""Tiny BLIP and CLIP models with random weights, saved with ``save_pretrained`` as the real ones are published.

For tests, the benchmark and offline demos (as ``models/tiny.py`` is for image generation): they run the real
loading and inference paths in seconds on a CPU; what they say about an image is noise.
"""

from __future__ import annotations

from pathlib import Path

import torch

SEED = 20261206
BLIP_WORDS = ["a", "photo", "of", "cat", "dog", "the", "red", "on", "table", "painting", "blue", "sky"]
_VISION = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def save_tiny_blip(folder: Path) -> Path:
    """A BLIP captioning model (1-layer vision and text towers, a 17-word BERT vocabulary) in ``folder``."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *BLIP_WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    text = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "encoder_hidden_size": 32,
        "max_position_embeddings": 64,
        # BLIP starts decoding from its [DEC] token and stops at [SEP], as the published models do.
        "bos_token_id": vocab.index("[DEC]"),
        "pad_token_id": 0,
        "sep_token_id": vocab.index("[SEP]"),
        "eos_token_id": vocab.index("[SEP]"),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = BlipForConditionalGeneration(BlipConfig(vision_config=_VISION, text_config=text, projection_dim=16))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    BlipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_tiny_clip(folder: Path) -> Path:
    """A CLIP model (1-layer towers, 16-wide projection) with the real CLIP tokenizer, in ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from openhorde.worker.models.tokenizer import clip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = CLIPModel(CLIPConfig(vision_config=_VISION, text_config=text, projection_dim=16))
    model.save_pretrained(folder)
    clip_tokenizer().save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder

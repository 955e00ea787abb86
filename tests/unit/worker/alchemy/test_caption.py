from pathlib import Path

import pytest
import torch
from PIL import Image

from openhorde.worker.alchemy.caption import Captioner
from openhorde.worker.alchemy.loading import AlchemyModelError
from openhorde.worker.alchemy.tiny import BLIP_WORDS, save_tiny_blip

CPU = torch.device("cpu")


def test_a_saved_blip_model_captions_an_image_with_words_of_its_vocabulary(tmp_path: Path) -> None:
    captioner = Captioner.from_pretrained(save_tiny_blip(tmp_path / "blip"), CPU)

    caption = captioner.caption(Image.new("RGB", (48, 40), (200, 30, 30)))

    assert caption and set(caption.split()) <= set(BLIP_WORDS)
    # Deterministic: the same image gets the same caption.
    assert captioner.caption(Image.new("RGBA", (48, 40), (200, 30, 30, 255))) == caption


def test_a_folder_without_a_model_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(AlchemyModelError, match=r"caption_model .*config\.json"):
        Captioner.from_pretrained(tmp_path, CPU)

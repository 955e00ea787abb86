from pathlib import Path

import pytest

from openhorde.worker.alchemy.loading import AlchemyModelError, checked_folder, image_processor


def test_a_folder_without_config_json_is_refused_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(AlchemyModelError, match="interrogation_model"):
        checked_folder(tmp_path, "interrogation_model")
    (tmp_path / "config.json").write_text("{}")
    assert checked_folder(tmp_path, "interrogation_model") == tmp_path


def test_the_image_processor_saved_in_a_folder_is_read_back(tmp_path: Path) -> None:
    from transformers import CLIPImageProcessorPil

    CLIPImageProcessorPil(crop_size={"height": 24, "width": 24}).save_pretrained(tmp_path)

    assert image_processor("CLIP", tmp_path).crop_size == {"height": 24, "width": 24}

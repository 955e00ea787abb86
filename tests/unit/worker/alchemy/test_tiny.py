from pathlib import Path

from openhorde.worker.alchemy.tiny import save_tiny_blip, save_tiny_clip


def test_the_tiny_models_are_saved_in_the_transformers_layout(tmp_path: Path) -> None:
    for folder in (save_tiny_blip(tmp_path / "blip"), save_tiny_clip(tmp_path / "clip")):
        names = {path.name for path in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= names
        assert "preprocessor_config.json" in names or "processor_config.json" in names

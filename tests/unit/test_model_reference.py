"""Reading the AI Horde image model reference format (records written here in the upstream shape)."""

from __future__ import annotations

import json

import pytest

from openhorde.model_reference import ReferenceError, ReferenceFile, loads, parse

RECORD = {
    "name": "AlbedoBase XL (SDXL)",
    "baseline": "stable_diffusion_xl",
    "type": "ckpt",
    "inpainting": False,
    "description": "Generalist SDXL.",
    "showcases": ["https://example.org/a.webp"],
    "version": "2.1",
    "style": "generalist",
    "trigger": ["albedo style"],
    "nsfw": True,
    "download_all": False,
    "config": {
        "files": [
            {"path": "albedo.safetensors", "sha256sum": "AB" * 32, "md5sum": "CD" * 16},
            {"path": "config.json"},
            {"path": "config.json", "sha256sum": "ef" * 32},
            {"path": "v1-inference.yaml"},
        ],
        "download": [
            {"file_name": "albedo.safetensors", "file_path": "", "file_url": "https://example.org/albedo"},
            {"file_name": "config.json", "file_path": "cfg/unet", "file_url": "https://example.org/u"},
            {"file_name": "config.json", "file_path": "/cfg/vae/", "file_url": "https://example.org/v"},
            {"file_name": "extra.bin", "file_path": "", "file_url": "https://example.org/x"},
        ],
    },
    "features_not_supported": ["hires_fix", "inpainting"],
    "size_on_disk_bytes": 6938040682,
    "some_future_key": {"ignored": True},
}


def test_a_record_of_the_upstream_shape_is_read_whole() -> None:
    model = loads(json.dumps({"AlbedoBase XL (SDXL)": RECORD}))["AlbedoBase XL (SDXL)"]
    assert (model.baseline, model.type, model.inpainting, model.nsfw) == ("stable_diffusion_xl", "ckpt", False, True)
    assert model.showcases == ("https://example.org/a.webp",) and model.triggers == ("albedo style",)
    assert model.features_not_supported == ("hires_fix", "inpainting")
    assert model.size_on_disk_bytes == 6938040682 and model.version == "2.1"
    assert model.files == (
        ReferenceFile("albedo.safetensors", "ab" * 32, "cd" * 16, "https://example.org/albedo"),
        # Same-named files join their downloads in order, each in its own folder.
        ReferenceFile("cfg/unet/config.json", None, None, "https://example.org/u"),
        ReferenceFile("cfg/vae/config.json", "ef" * 32, None, "https://example.org/v"),
        ReferenceFile("v1-inference.yaml"),
        ReferenceFile("extra.bin", url="https://example.org/x"),
    )


def test_post_processor_records_without_baseline_are_read() -> None:
    record = {"name": "RealESRGAN_x4plus", "type": "realesrgan", "config": {"files": [], "download": []}}
    model = parse({"RealESRGAN_x4plus": record})["RealESRGAN_x4plus"]
    assert (model.baseline, model.type, model.files) == ("", "realesrgan", ())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": None}, "'name' is required"),
        ({"nsfw": "yes"}, "'nsfw' must be true or false"),
        ({"showcases": "https://x"}, "'showcases' must be a list of strings"),
        ({"size_on_disk_bytes": -1}, "'size_on_disk_bytes' must be a whole number"),
        ({"config": {"files": [{"path": "a.ckpt", "sha256sum": "xyz"}]}}, "64 hexadecimal digits"),
        ({"config": {"download": [{"file_name": "a.ckpt"}]}}, "'file_url' is required"),
    ],
)
def test_a_malformed_record_is_an_error_naming_it(change: dict[str, object], message: str) -> None:
    with pytest.raises(ReferenceError, match=message) as caught:
        parse({"Broken": {**RECORD, **change}}, "ref.json")
    assert "ref.json: 'Broken'" in str(caught.value)


def test_text_that_is_no_reference_is_refused() -> None:
    with pytest.raises(ReferenceError, match="not valid JSON"):
        loads("<html>rate limited</html>", "https://example.org/ref.json")
    with pytest.raises(ReferenceError, match="top level must be an object"):
        loads("[]")

"""The worker's model catalogue file: parsing, baseline aliases, strict errors and the built-in model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openhorde.worker.models import tiny
from openhorde.worker.models.catalogue import (
    TINY_ENTRY,
    TINY_MODEL_NAME,
    CatalogueError,
    UnknownModel,
    load_catalogue,
    normalise_baseline,
    parse_catalogue,
)

SHA = "ab" * 32

CATALOGUE_YAML = f"""
models:
  - name: Deliberate
    baseline: stable diffusion 1
    file: deliberate_v2.safetensors
    url: https://example.org/models/deliberate_v2.safetensors
    sha256: {SHA.upper()}
    nsfw: true
    triggers: [deliberate]
    description: A generalist model.
  - name: SDXL 1.0
    baseline: stable_diffusion_xl
    hub_id: stabilityai/stable-diffusion-xl-base-1.0
  - name: Realistic Vision Inpainting
    baseline: stable_diffusion_1
    inpainting: true
    url: https://example.org/rv_inpainting.safetensors
  - name: Tiny as a file
    baseline: sd1
    file: openhorde-tiny.safetensors
    config: openhorde-tiny-config
loras:
  - name: add_detail
    url: https://example.org/lora/58390
    triggers: detailed
    baseline: sd1
textual_inversions:
  - name: easynegative
    file: ti/easynegative.safetensors
    sha256: {SHA}
"""


def write(tmp_path: Path, text: str, name: str = "catalogue.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_catalogue_is_parsed(tmp_path: Path) -> None:
    catalogue = load_catalogue(write(tmp_path, CATALOGUE_YAML))
    deliberate = catalogue.model("Deliberate")
    assert deliberate.baseline == "sd1"
    assert deliberate.sha256 == SHA  # lower-cased
    assert deliberate.nsfw and not deliberate.inpainting
    assert deliberate.triggers == ("deliberate",)
    assert deliberate.is_single_file
    assert catalogue.model("SDXL 1.0").hub_id == "stabilityai/stable-diffusion-xl-base-1.0"
    assert catalogue.model("SDXL 1.0").file is None
    # A URL ending in a file name gives the file name.
    assert catalogue.model("Realistic Vision Inpainting").file == "rv_inpainting.safetensors"
    assert catalogue.model("Tiny as a file").config == "openhorde-tiny-config"
    lora = catalogue.lora("add_detail")
    assert lora is not None and lora.kind == "lora" and lora.triggers == ("detailed",)
    assert lora.file == "loras/add_detail.safetensors"
    ti = catalogue.ti("easynegative")
    assert ti is not None and ti.kind == "ti" and ti.sha256 == SHA
    assert catalogue.lora("missing") is None and catalogue.ti("missing") is None
    assert catalogue.model_names() == sorted(
        [TINY_MODEL_NAME, "Deliberate", "SDXL 1.0", "Realistic Vision Inpainting", "Tiny as a file"]
    )


def test_json_catalogues_work_too(tmp_path: Path) -> None:
    raw = {"models": [{"name": "m", "baseline": "sdxl", "file": "m.safetensors"}]}
    catalogue = load_catalogue(write(tmp_path, json.dumps(raw), "catalogue.json"))
    assert catalogue.model("m").baseline == "sdxl"


@pytest.mark.parametrize(
    ("alias", "baseline"),
    [
        ("sd1", "sd1"),
        ("stable diffusion 1", "sd1"),
        ("stable_diffusion_1", "sd1"),
        ("sd2", "sd2"),
        ("stable diffusion 2", "sd2"),
        ("stable_diffusion_2_768", "sd2"),
        ("sdxl", "sdxl"),
        ("stable_diffusion_xl", "sdxl"),
        ("Stable Diffusion 1", "sd1"),
    ],
)
def test_baseline_aliases_are_normalised(alias: str, baseline: str) -> None:
    assert normalise_baseline(alias) == baseline


def test_the_tiny_model_is_always_there(tmp_path: Path) -> None:
    assert load_catalogue(None).model(TINY_MODEL_NAME) == TINY_ENTRY
    assert load_catalogue(write(tmp_path, "")).model(TINY_MODEL_NAME).source == "builtin"
    assert load_catalogue(write(tmp_path, CATALOGUE_YAML)).model(TINY_MODEL_NAME) is TINY_ENTRY
    assert TINY_MODEL_NAME == tiny.TINY_MODEL_NAME


def test_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match=f"'nope' is not in the worker's catalogue.*{TINY_MODEL_NAME}"):
        load_catalogue(None).model("nope")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "m", "baseline": "sd1", "file": "m.safetensors", "sha265": SHA}, r"unknown key\(s\) \['sha265'\]"),
        ({"name": "m", "baseline": "sd3", "file": "m.safetensors"}, "unknown baseline 'sd3'"),
        ({"name": "m", "file": "m.safetensors"}, "'baseline' is required"),
        ({"baseline": "sd1", "file": "m.safetensors"}, "'name' is required"),
        ({"name": "m", "baseline": "sd1", "file": "m.safetensors", "nsfw": "yes"}, "'nsfw' must be true or false"),
        ({"name": "m", "baseline": "sd1", "file": "m.safetensors", "sha256": "abc"}, "64 hexadecimal digits"),
        ({"name": "m", "baseline": "sd1", "file": "m.safetensors", "url": "ftp://x/m"}, "http\\(s\\) URL"),
        ({"name": "m", "baseline": "sd1"}, "give 'file'"),
        ({"name": "m", "baseline": "sd1", "url": "https://example.org/download?id=3"}, "does not end in a file name"),
        ({"name": "m", "baseline": "sd1", "file": "folder", "sha256": SHA}, "is a diffusers folder"),
        ({"name": "m", "baseline": "sd1", "file": "m.safetensors", "triggers": [1]}, "'triggers' must be a list"),
        ({"name": TINY_MODEL_NAME, "baseline": "sd1", "file": "t.safetensors"}, "reserved for the built-in model"),
        ("just a string", "an entry must be a mapping"),
    ],
)
def test_bad_model_entries_name_the_file_and_entry(tmp_path: Path, entry: object, message: str) -> None:
    path = write(tmp_path, json.dumps({"models": [{"name": "ok", "baseline": "sd1", "file": "ok.ckpt"}, entry]}))
    with pytest.raises(CatalogueError, match=message) as caught:
        load_catalogue(path)
    assert str(path) in str(caught.value)
    assert "models[1]" in str(caught.value)


def test_bad_adapter_entries_and_sections_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"loras\[0\] \('l'\): unknown key\(s\) \['strength'\]"):
        parse_catalogue({"loras": [{"name": "l", "strength": 1}]})
    with pytest.raises(CatalogueError, match=r"unknown section\(s\) \['lora'\]"):
        parse_catalogue({"lora": []})
    with pytest.raises(CatalogueError, match="appears twice"):
        parse_catalogue({"textual_inversions": [{"name": "t"}, {"name": "t"}]})
    with pytest.raises(CatalogueError, match="'models' must be a list"):
        parse_catalogue({"models": {"name": "m"}})
    with pytest.raises(CatalogueError, match="top level must be a mapping"):
        parse_catalogue(["models"])
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(write(tmp_path, "models: [unclosed"))
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")

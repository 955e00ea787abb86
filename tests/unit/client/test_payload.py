"""The ``generate/async`` body built from the command's options, and source images encoded as WebP."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from openhorde.client.payload import (
    HypernetworkChoice,
    ImageRequest,
    InputFileError,
    LoraChoice,
    encode_image,
    parse_hypernetwork,
    parse_lora,
    split_prompt,
)


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("shiny", LoraChoice("shiny", 1.0)),
        ("shiny:0.5", LoraChoice("shiny", 0.5)),
        ("12345:-1.5", LoraChoice("12345", -1.5)),
        ("odd:name:2", LoraChoice("odd:name", 2.0)),
    ],
)
def test_a_lora_is_a_name_and_an_optional_strength(text: str, choice: LoraChoice) -> None:
    assert parse_lora(text) == choice


@pytest.mark.parametrize(
    ("text", "words"),
    [(":1", "no LoRA name"), ("shiny:", "empty strength"), ("shiny:x", "not a number"), ("shiny:9", "between")],
)
def test_a_bad_lora_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_lora(text)


def test_hypernetworks_parse_like_loras_and_go_into_params() -> None:
    assert parse_hypernetwork("anime:0.4") == HypernetworkChoice("anime", 0.4)
    with pytest.raises(ValueError, match="no hypernetwork name"):
        parse_hypernetwork(":1")
    request = ImageRequest(prompt="a cat", hypernetworks=(HypernetworkChoice("anime", 0.4), HypernetworkChoice("ink")))
    assert request.to_wire()["params"]["hypernetworks"] == [
        {"name": "anime", "strength": 0.4},
        {"name": "ink", "strength": 1.0},
    ]
    assert "hypernetworks" not in ImageRequest(prompt="a cat").to_wire()["params"]


def test_the_body_has_the_ai_horde_field_names() -> None:
    request = ImageRequest(
        prompt="a cat",
        negative="dogs",
        models=("Deliberate",),
        width=640,
        height=384,
        steps=12,
        sampler="k_dpmpp_2m",
        cfg_scale=6.5,
        seed="42",
        count=3,
        karras=True,
        loras=(LoraChoice("shiny", 0.7),),
        nsfw=True,
        censor_nsfw=True,
    )
    assert request.to_wire() == {
        "prompt": "a cat###dogs",
        "params": {
            "width": 640,
            "height": 384,
            "steps": 12,
            "sampler_name": "k_dpmpp_2m",
            "cfg_scale": 6.5,
            "seed": "42",
            "n": 3,
            "karras": True,
            "loras": [{"name": "shiny", "model": 0.7, "clip": 0.7}],
        },
        "models": ["Deliberate"],
        "nsfw": True,
        "censor_nsfw": True,
        "r2": True,
    }


def test_source_fields_appear_only_with_a_source_image() -> None:
    plain = ImageRequest(prompt="a cat").to_wire()
    assert not {"source_image", "source_mask", "source_processing"} & set(plain) and "seed" not in plain["params"]
    painted = ImageRequest(
        prompt="a cat", source_image="AAA", source_mask="BBB", source_processing="inpainting", denoising_strength=0.4
    ).to_wire()
    assert (painted["source_image"], painted["source_mask"], painted["source_processing"]) == (
        "AAA",
        "BBB",
        "inpainting",
    )
    assert painted["params"]["denoising_strength"] == 0.4


def test_the_prompt_splits_at_the_first_separator() -> None:
    assert split_prompt("a cat###dogs, birds") == ("a cat", "dogs, birds")
    assert split_prompt("a cat") == ("a cat", "")


def _decode(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    assert image.format == "WEBP"
    return image


def test_a_transparent_source_keeps_its_alpha_exactly(tmp_path: Path) -> None:
    path = tmp_path / "border.png"
    picture = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    picture.paste((200, 10, 10, 255), (16, 16, 48, 48))
    picture.save(path)
    decoded = _decode(encode_image(path)).convert("RGBA")
    assert decoded.getpixel((0, 0))[3] == 0 and decoded.getpixel((32, 32)) == (200, 10, 10, 255)


def test_a_mask_becomes_greyscale(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.new("RGB", (64, 64), (255, 255, 255)).save(path)
    assert _decode(encode_image(path, as_mask=True)).convert("L").getpixel((5, 5)) == 255


def test_a_file_that_is_no_picture_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InputFileError, match=r"the mask .*notes\.txt is not an image"):
        encode_image(path, as_mask=True)


def test_post_processing_is_sent_only_when_asked_for() -> None:
    plain = ImageRequest(prompt="a cat").params()
    assert "post_processing" not in plain and "facefixer_strength" not in plain
    asked = ImageRequest(prompt="a cat", post_processing=("GFPGAN", "strip_background"), facefixer_strength=0.3)
    assert asked.params()["post_processing"] == ["GFPGAN", "strip_background"]
    assert asked.params()["facefixer_strength"] == 0.3

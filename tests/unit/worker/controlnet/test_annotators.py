"""Annotators: the weight-free ones on drawn images, the networks on random weights in their real file layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from openhorde.worker.controlnet import names
from openhorde.worker.controlnet.annotators import Annotators, AnnotatorUnavailable, canny, hough, scribble
from openhorde.worker.controlnet.seg import ADE20K_PALETTE

from . import weights

pytestmark = pytest.mark.generation  # real-size networks (OpenPose's 52 M parameters) built and run on the CPU
CPU = torch.device("cpu")


def square(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (0, 0, 0))
    image.paste((255, 255, 255), (16, 16, 48, 48))
    return image


def grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Annotators:
    folder = weights.write_annotators(tmp_path_factory.mktemp("annotators"))
    return Annotators.load(folder, CPU)


def test_canny_draws_the_edges_of_a_square_and_nothing_inside_or_outside() -> None:
    edges = grey(canny(square()))

    assert edges.shape == (64, 64)
    assert edges[16:48, 15:17].any() and edges[15:17, 16:48].any()
    assert not edges[24:40, 24:40].any() and not edges[:8].any()
    assert set(np.unique(edges)) == {0, 255}


def test_scribble_turns_dark_strokes_on_white_into_white_strokes_on_black() -> None:
    drawing = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(drawing).line((8, 32, 56, 32), fill="black", width=3)

    strokes = grey(scribble(drawing))

    assert strokes[32, 8:56].min() == 255 and strokes[:20].max() == 0


def test_without_mlsd_hough_finds_a_straight_line_with_opencv_and_draws_only_lines() -> None:
    picture = Image.new("RGB", (128, 128), "black")
    ImageDraw.Draw(picture).line((10, 100, 118, 20), fill="white", width=2)

    lines = grey(hough(picture))

    assert lines.shape == (128, 128) and lines[60:66, 60:70].any()
    assert not lines[:10, :10].any() and not lines[110:, 110:].any()


def test_every_control_type_has_an_annotator_when_every_weight_file_is_there(loaded: Annotators) -> None:
    assert loaded.types == list(names.CONTROL_TYPES)
    for kind in names.CONTROL_TYPES:
        control = loaded(kind, square(64).resize((96, 64)))
        assert control.size == (96, 64) and control.mode == "RGB", kind


def test_a_missing_weight_file_leaves_only_its_annotators_out(tmp_path: Path) -> None:
    weights.write_hed(tmp_path / names.HED_FILES[0].path)

    annotators = Annotators.load(tmp_path, CPU)

    assert annotators.types == ["canny", "hed", "scribble", "fakescribbles", "hough"]
    with pytest.raises(AnnotatorUnavailable, match="depth"):
        annotators("depth", square())


def test_hed_soft_edges_are_grey_levels_and_fake_scribbles_are_black_or_white(loaded: Annotators) -> None:
    soft = grey(loaded("hed", square()))
    scribbles = grey(loaded("fakescribbles", square()))

    assert len(np.unique(soft)) > 2
    assert set(np.unique(scribbles)) <= {0, 255}


def test_segmentation_paints_only_ade20k_class_colours(loaded: Annotators) -> None:
    colours = np.asarray(loaded("seg", square())).reshape(-1, 3)

    palette = {tuple(colour) for colour in ADE20K_PALETTE.tolist()}
    assert ADE20K_PALETTE.shape == (150, 3)
    assert {tuple(colour) for colour in colours.tolist()} <= palette


def test_the_pose_map_has_the_image_size(loaded: Annotators) -> None:
    assert np.asarray(loaded("openpose", square(64).resize((80, 64)))).shape == (64, 80, 3)


def test_hough_maps_mlsd_lines_at_the_image_size(loaded: Annotators) -> None:
    lines = grey(loaded("hough", square(64).resize((96, 64))))

    assert lines.shape == (64, 96) and set(np.unique(lines)) <= {0, 255}

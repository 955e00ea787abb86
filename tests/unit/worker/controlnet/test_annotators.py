"""Annotators: the weight-free ones on drawn images, the networks on random weights in their real file layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from openhorde.worker.controlnet import names
from openhorde.worker.controlnet.annotators import Annotators, AnnotatorUnavailable, canny, hough, scribble
from openhorde.worker.controlnet.depth import NORMAL_BACKGROUND, depth_map, normal_map
from openhorde.worker.controlnet.hed import fake_scribble
from openhorde.worker.controlnet.mlsd import load_mlsd, segments
from openhorde.worker.controlnet.openpose import LIMBS, decode_pose, draw_pose, load_body_model
from openhorde.worker.controlnet.seg import ADE20K_PALETTE

from . import weights

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


def test_mlsd_segments_come_from_centre_scores_and_end_displacements() -> None:
    maps = np.full((9, 32, 32), -10.0, dtype=np.float32)  # sigmoid ≈ 0: no centre anywhere
    maps[0, 12, 10] = 5.0  # one confident centre at x=10, y=12
    maps[1:5, 12, 10] = (-5.0, 0.0, 5.0, 0.0)  # its ends 5 cells left and right
    maps[0, 20, 20] = 5.0  # a confident centre whose ends coincide: too short
    maps[1:5, 20, 20] = (0.01, 0.0, 0.0, 0.0)

    found = segments(maps)

    assert found.tolist() == [[5.0, 12.0, 15.0, 12.0]]


def test_mlsd_loads_its_published_layout_and_maps_lines_at_the_image_size(loaded: Annotators, tmp_path: Path) -> None:
    path = weights.write_mlsd(tmp_path / "mlsd_large_512_fp32.pth")
    stored = torch.load(path, weights_only=True)

    network = load_mlsd(path, CPU)

    assert "backbone.features.0.0.weight" in stored and "block23.conv3.weight" in stored
    assert torch.equal(network.block23.conv3.weight, stored["block23.conv3.weight"])
    assert network(torch.zeros(1, 4, 64, 96)).shape == (1, 9, 32, 48)
    lines = grey(loaded("hough", square(64).resize((96, 64))))
    assert lines.shape == (64, 96) and set(np.unique(lines)) <= {0, 255}


def test_hed_soft_edges_are_grey_levels_and_fake_scribbles_are_black_or_white(loaded: Annotators) -> None:
    soft = grey(loaded("hed", square()))
    scribbles = grey(loaded("fakescribbles", square()))

    assert len(np.unique(soft)) > 2
    assert set(np.unique(scribbles)) <= {0, 255}


def test_fake_scribbles_thicken_a_thin_edge() -> None:
    edges = np.zeros((64, 64), dtype=np.uint8)
    edges[:, 26:38] = 255  # a soft edge a dozen pixels wide

    strokes = fake_scribble(edges)

    assert set(np.unique(strokes)) == {0, 255}
    assert strokes[32, 32] == 255 and strokes[32, 28] == 255 and strokes[32, 5] == 0 and strokes[32, 60] == 0


def test_depth_is_stretched_over_its_range_and_the_normals_of_a_slope_lean() -> None:
    ramp = np.tile(np.linspace(0.0, 10.0, 64, dtype=np.float32), (64, 1))  # nearer to the right

    assert depth_map(ramp)[0, 0] == 0 and depth_map(ramp)[0, -1] == 255
    normals = normal_map(ramp).astype(int)
    far = int(64 * NORMAL_BACKGROUND) - 2
    assert tuple(normals[32, far]) == (127, 127, 255)  # the background faces the viewer
    assert normals[32, 50, 0] > 140 and normals[32, 50, 1] == 127  # the slope's normal tilts along x only


def test_segmentation_paints_only_ade20k_class_colours(loaded: Annotators) -> None:
    colours = np.asarray(loaded("seg", square())).reshape(-1, 3)

    palette = {tuple(colour) for colour in ADE20K_PALETTE.tolist()}
    assert ADE20K_PALETTE.shape == (150, 3)
    assert {tuple(colour) for colour in colours.tolist()} <= palette


def _person_maps(joints: dict[int, tuple[int, int]], size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Heat maps with a peak at each joint and affinity fields pointing along each limb between them."""
    from openhorde.worker.controlnet.openpose import AFFINITY_CHANNELS

    heat = np.zeros((size, size, 19), dtype=np.float32)
    affinity = np.zeros((size, size, 38), dtype=np.float32)
    ys, xs = np.mgrid[0:size, 0:size]
    for part, (x, y) in joints.items():
        heat[:, :, part - 1] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0)
    for (a, b), (cx, cy) in zip(LIMBS, AFFINITY_CHANNELS, strict=True):
        if a in joints and b in joints:
            start, end = np.array(joints[a], float), np.array(joints[b], float)
            direction = (end - start) / np.linalg.norm(end - start)
            for t in np.linspace(0, 1, 50):
                x, y = np.rint(start + t * (end - start)).astype(int)
                affinity[y - 1 : y + 2, x - 1 : x + 2, cx] = direction[0]
                affinity[y - 1 : y + 2, x - 1 : x + 2, cy] = direction[1]
    return heat, affinity


def test_pose_decoding_assembles_a_person_from_keypoints_and_limbs_and_draws_it() -> None:
    joints = {1: (48, 12), 2: (48, 28), 3: (34, 30), 4: (28, 48), 6: (62, 30), 7: (68, 48), 9: (40, 60), 12: (56, 60)}

    candidates, people = decode_pose(*_person_maps(joints))

    assert len(people) == 1 and people[0][-1] == len(joints)
    found = {part + 1 for part in range(18) if people[0][part] >= 0}
    assert found == set(joints)
    canvas = draw_pose((96, 96), candidates, people)
    assert canvas[28, 48].any() and not canvas[90, 5].any()


def test_the_pose_network_loads_body_pose_model_pth_layer_names(tmp_path: Path) -> None:
    path = weights.write_openpose(tmp_path / "body_pose_model.pth")
    stored = torch.load(path, weights_only=True)

    network = load_body_model(path, CPU)

    assert "conv1_1.weight" in stored and "Mconv7_stage6_L2.bias" in stored
    assert torch.equal(network.model0.conv1_1.weight, stored["conv1_1.weight"].float())
    affinity, heat = network(torch.zeros(1, 3, 48, 64))
    assert affinity.shape == (1, 38, 6, 8) and heat.shape == (1, 19, 6, 8)


def test_the_pose_map_has_the_image_size(loaded: Annotators) -> None:
    assert np.asarray(loaded("openpose", square(64).resize((80, 64)))).shape == (64, 80, 3)

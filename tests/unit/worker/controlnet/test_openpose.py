"""OpenPose: people assembled from keypoint maps and affinity fields, drawn; the published layout loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from openhorde.worker.controlnet.openpose import LIMBS, decode_pose, draw_pose, load_body_model

from . import weights

pytestmark = pytest.mark.generation  # real-size networks (OpenPose's 52 M parameters) built and run on the CPU
CPU = torch.device("cpu")


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

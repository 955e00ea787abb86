"""M-LSD: its published layout loads, and line segments are decoded from centre scores and end displacements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from openhorde.worker.controlnet.mlsd import load_mlsd, segments

from . import weights


def test_mlsd_segments_come_from_centre_scores_and_end_displacements() -> None:
    maps = np.full((9, 32, 32), -10.0, dtype=np.float32)  # sigmoid ≈ 0: no centre anywhere
    maps[0, 12, 10] = 5.0  # one confident centre at x=10, y=12
    maps[1:5, 12, 10] = (-5.0, 0.0, 5.0, 0.0)  # its ends 5 cells left and right
    maps[0, 20, 20] = 5.0  # a confident centre whose ends coincide: too short
    maps[1:5, 20, 20] = (0.01, 0.0, 0.0, 0.0)

    found = segments(maps)

    assert found.tolist() == [[5.0, 12.0, 15.0, 12.0]]


def test_mlsd_loads_its_published_layout_and_maps_at_half_size(tmp_path: Path) -> None:
    path = weights.write_mlsd(tmp_path / "mlsd_large_512_fp32.pth")
    stored = torch.load(path, weights_only=True)

    network = load_mlsd(path, torch.device("cpu"))

    assert "backbone.features.0.0.weight" in stored and "block23.conv3.weight" in stored
    assert torch.equal(network.block23.conv3.weight, stored["block23.conv3.weight"])
    assert network(torch.zeros(1, 4, 64, 96)).shape == (1, 9, 32, 48)

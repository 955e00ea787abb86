"""MiDaS's depth as a map, and the normals derived from it."""

from __future__ import annotations

import numpy as np

from openhorde.worker.controlnet.depth import NORMAL_BACKGROUND, depth_map, normal_map


def test_depth_is_stretched_over_its_range_and_the_normals_of_a_slope_lean() -> None:
    ramp = np.tile(np.linspace(0.0, 10.0, 64, dtype=np.float32), (64, 1))  # nearer to the right

    assert depth_map(ramp)[0, 0] == 0 and depth_map(ramp)[0, -1] == 255
    normals = normal_map(ramp).astype(int)
    far = int(64 * NORMAL_BACKGROUND) - 2
    # Channels as the normal ControlNet reads them: z, y, x.
    assert tuple(normals[32, far]) == (255, 127, 127)  # the background faces the viewer
    assert normals[32, 50, 2] > 140 and normals[32, 50, 1] == 127  # the slope's normal tilts along x only

"""HED's fake scribbles: soft edges thinned, thickened and thresholded into strokes."""

from __future__ import annotations

import numpy as np

from openhorde.worker.controlnet.hed import fake_scribble


def test_fake_scribbles_thicken_a_thin_edge() -> None:
    edges = np.zeros((64, 64), dtype=np.uint8)
    edges[:, 26:38] = 255  # a soft edge a dozen pixels wide

    strokes = fake_scribble(edges)

    assert set(np.unique(strokes)) == {0, 255}
    assert strokes[32, 32] == 255 and strokes[32, 28] == 255 and strokes[32, 5] == 0 and strokes[32, 60] == 0

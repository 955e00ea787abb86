"""Weight files for the post-processing tests, written once per session (the face restorers' are large)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.worker.postprocess import weights


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store holding tiny upscalers and the background model under the model reference's file names."""
    folder = tmp_path_factory.mktemp("postprocessors")
    weights.write_pth(folder / "RealESRGAN_x4plus.pth", weights.realesrgan_state(4), wrap="params_ema")
    weights.write_pth(folder / "RealESRGAN_x2plus.pth", weights.realesrgan_state(2), wrap="params_ema")
    weights.write_pth(folder / "NMKD_Siax.pth", weights.esrgan_old_state())
    weights.write_pth(folder / "4x_AnimeSharp.pth", weights.esrgan_old_state())
    weights.u2net_shaped_onnx(folder / "u2net.onnx")
    return folder


@pytest.fixture(scope="session")
def codeformer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CodeFormer model saved as the published file is (270 MB: its VQ autoencoder has a fixed size)."""
    folder = tmp_path_factory.mktemp("codeformer")
    return weights.write_pth(folder / "CodeFormers.pth", weights.codeformer_state(), "params_ema")


@pytest.fixture(scope="session")
def gfpgan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GFPGAN v1.4 model saved with ``torch.save`` as the published file is (350 MB)."""
    return weights.write_pth(tmp_path_factory.mktemp("gfpgan") / "GFPGANv1.4.pth", weights.gfpgan_state(), "params_ema")

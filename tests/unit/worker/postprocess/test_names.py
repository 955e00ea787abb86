import pytest

from openhorde.worker.postprocess import names as pp

ALL = ["strip_background", "RealESRGAN_x4plus", "GFPGAN"]


def test_every_name_the_horde_knows_has_a_file_from_the_model_reference() -> None:
    assert set(pp.POST_PROCESSOR_FILES) == {
        "GFPGAN",
        "RealESRGAN_x4plus",
        "RealESRGAN_x2plus",
        "RealESRGAN_x4plus_anime_6B",
        "NMKD_Siax",
        "4x_AnimeSharp",
        "CodeFormers",
        "strip_background",
    }
    assert pp.POST_PROCESSOR_FILES["GFPGAN"] == "GFPGANv1.4.pth"
    assert pp.POST_PROCESSOR_FILES["CodeFormers"] == "CodeFormers.pth"


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("facefixers_first", ["GFPGAN", "RealESRGAN_x4plus", "strip_background"]),
        ("upscalers_first", ["RealESRGAN_x4plus", "GFPGAN", "strip_background"]),
        ("custom", ALL),
    ],
)
def test_order(order: pp.PostProcessingOrder, expected: list[str]) -> None:
    assert pp.ordered(ALL, order) == expected


def test_an_unknown_name_has_no_kind() -> None:
    with pytest.raises(KeyError):
        pp.kind("RealESRGAN_x8")

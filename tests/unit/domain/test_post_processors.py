import pytest

from openhorde.domain import post_processors as pp


def test_every_known_post_processor_has_a_bit() -> None:
    assert set(pp.POST_PROCESSORS) == pp.UPSCALERS | pp.FACE_FIXERS | {pp.STRIP_BACKGROUND}
    assert pp.bits(pp.POST_PROCESSORS) == pp.ALL_BITS == 0b1111_1111
    assert pp.bits(["GFPGAN", "strip_background", "GFPGAN"]) == 0b1000_0001
    assert pp.bits([]) == 0


@pytest.mark.parametrize(
    ("agent", "parsed"),
    [
        ("AI Horde Worker reGen:9.0.2:https://github.com/Haidra-Org", ("AI Horde Worker reGen", 9)),
        ("AI Horde Worker:24:https://x", ("AI Horde Worker", 24)),
        ("unknown:0:unknown", ("unknown", 0)),
        ("weird", ("weird", 0)),
        ("name:beta:url", ("name", 0)),
    ],
)
def test_bridge_agents_are_read_as_name_and_major_version(agent: str, parsed: tuple[str, int]) -> None:
    assert pp.parse_bridge_agent(agent) == parsed


def test_the_legacy_worker_gains_post_processors_version_by_version() -> None:
    assert pp.bridge_post_processors("AI Horde Worker:6:u") == frozenset()
    assert pp.bridge_post_processors("AI Horde Worker:9:u") == {"GFPGAN", "RealESRGAN_x4plus", "CodeFormers"}
    assert "RealESRGAN_x2plus" not in (pp.bridge_post_processors("AI Horde Worker:20:u") or ())
    assert pp.bridge_post_processors("AI Horde Worker:21:u") == set(pp.POST_PROCESSORS)


def test_refusals() -> None:
    assert pp.refused_by_bridge("AI Horde Worker reGen:1.0.0:u") == 0
    assert pp.refused_by_bridge("OpenHorde Worker:0.1.0:u") == 0  # a bridge the table does not know: no limit
    assert pp.refused_by_bridge("SD-WebUI Stable Horde Worker Bridge:4:u") == pp.ALL_BITS
    assert pp.refused_by_bridge("AI Horde Worker:20:u") == pp.bits(["RealESRGAN_x2plus"])
    assert pp.refused_by_worker(()) == 0
    assert pp.refused_by_worker(tuple(pp.POST_PROCESSORS[1:])) == pp.bits(["GFPGAN"])

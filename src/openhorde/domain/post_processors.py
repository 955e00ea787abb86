"""Which post-processors a popping worker may be handed: what its bridge can run, and what it says it has.

A request stores its post-processors as bits (``post_processor_bits``), so matching is one integer test per
worker: ``bits & refused = 0``.

The AI Horde checks each requested post-processor against a table of bridge versions
(``horde/bridge_reference.py``): the legacy ``AI Horde Worker`` gained them one by one (GFPGAN and
RealESRGAN_x4plus at 7, CodeFormers at 9, …, RealESRGAN_x2plus at 21), reGen had them all from its first
version, and the other known bridges have none (they lack the ``post-processing`` capability itself). Such a
refusal is skipped as ``bridge_version``, as upstream. Two differences, on purpose:

* A bridge the table does not name (ours, ``OpenHorde Worker``, and any third party) is trusted with every
  post-processor its ``allow_post_processing`` flag claims; upstream refuses it all of them.
* A worker may list the post-processors it has in ``post_processors`` (an OpenHorde extension of the pop); a
  request asking for one it lacks is skipped as ``post-processing`` instead of being handed over to fail.
  An upstream worker sends no list, so it is judged by its flag alone, as upstream.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

POST_PROCESSORS: tuple[str, ...] = (
    "GFPGAN",
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "CodeFormers",
    "strip_background",
)
"""Every post-processor, in bit order: stored in ``requests.post_processor_bits``, so only ever append."""
UPSCALERS = frozenset(
    {"RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp"}
)
FACE_FIXERS = frozenset({"GFPGAN", "CodeFormers"})
STRIP_BACKGROUND = "strip_background"
ALL_BITS = (1 << len(POST_PROCESSORS)) - 1

_EVERY_ONE = frozenset(POST_PROCESSORS)
BRIDGE_POST_PROCESSORS: dict[str, dict[int, frozenset[str]]] = {
    "AI Horde Worker reGen": {1: _EVERY_ONE},
    "AI Horde Worker": {
        7: frozenset({"GFPGAN", "RealESRGAN_x4plus"}),
        9: frozenset({"CodeFormers"}),
        18: frozenset({"strip_background", "RealESRGAN_x4plus_anime_6B"}),
        19: frozenset({"NMKD_Siax", "4x_AnimeSharp"}),
        21: frozenset({"RealESRGAN_x2plus"}),
    },
    # Without the "post-processing" capability upstream refuses every post-processor, whatever else they list.
    "SD-WebUI Stable Horde Worker Bridge": {},
    "HordeAutoWebBridge": {},
}
"""Per known bridge: the post-processors each version added (a version has those of every earlier one)."""


def bits(names: Iterable[str]) -> int:
    """The bits of these post-processor names (unknown names have none)."""
    return sum(1 << POST_PROCESSORS.index(name) for name in set(names) if name in _EVERY_ONE)


def parse_bridge_agent(bridge_agent: str) -> tuple[str, int]:
    """``(name, major version)`` of ``name:version:url``; a version that is not a number counts as 0."""
    name, _, rest = bridge_agent.partition(":")
    major = rest.split(":", 1)[0].split(".", 1)[0].strip()
    return name, int(major) if major.isascii() and major.isdigit() else 0


def bridge_post_processors(bridge_agent: str) -> frozenset[str] | None:
    """The post-processors a bridge's version can run; ``None`` for a bridge the table does not know (no limit)."""
    name, version = parse_bridge_agent(bridge_agent)
    table = BRIDGE_POST_PROCESSORS.get(name)
    if table is None:
        return None
    supported: set[str] = set()
    for since, added in table.items():
        if version >= since:
            supported |= added
    return frozenset(supported)


@functools.lru_cache(maxsize=1024)
def refused_by_bridge(bridge_agent: str) -> int:
    """The bits of the post-processors this bridge cannot run (0 when it can run them all, or is unknown)."""
    supported = bridge_post_processors(bridge_agent)
    return 0 if supported is None else ALL_BITS & ~bits(supported)


@functools.lru_cache(maxsize=1024)
def refused_by_worker(declared: tuple[str, ...]) -> int:
    """The bits of the post-processors missing from a worker's own list (0 when it sent none)."""
    names = tuple(declared)
    return 0 if not names else ALL_BITS & ~bits(names)

"""``Turns``: callers with the same key take turns; other keys do not wait; nothing stays behind."""

from __future__ import annotations

import asyncio

from openhorde.domain.turns import Turns


async def test_callers_with_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    turns, inside, most_inside, log = Turns(), {"a": 0, "b": 0}, {"a": 0, "b": 0}, []

    async def caller(key: str, name: str) -> None:
        async with turns.turn(key):
            inside[key] += 1
            most_inside[key] = max(most_inside[key], inside[key])
            log.append(name)
            await asyncio.sleep(0.01)
            inside[key] -= 1

    await asyncio.gather(*(caller("a", f"a{i}") for i in range(5)), caller("b", "b0"))
    assert most_inside == {"a": 1, "b": 1}
    assert log.index("b0") < log.index("a1"), "b waited for a's turns"
    assert len(turns) == 0, "a key outlived its callers"


async def test_a_turn_ends_when_its_block_raises() -> None:
    turns = Turns()
    try:
        async with turns.turn("a"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with asyncio.timeout(1):
        async with turns.turn("a"):
            pass
    assert len(turns) == 0

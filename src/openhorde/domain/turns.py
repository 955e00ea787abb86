"""Turns within one process: callers with the same key (a requester, say) run a section one at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class Turns:
    """One ``asyncio.Lock`` per key, made when a caller first asks for it and dropped when no caller holds or waits
    for it (so the keys of a busy horde do not pile up)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Run the block when no other caller with ``key`` is in its own."""
        lock, callers = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, callers + 1)
        try:
            async with lock:
                yield
        finally:
            lock, callers = self._locks[key]
            if callers == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, callers - 1)

    def __len__(self) -> int:
        """Keys with a caller in or waiting for its turn."""
        return len(self._locks)

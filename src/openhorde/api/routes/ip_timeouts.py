"""``/operations/ipaddr`` and ``/operations/block_worker_ipaddr``: moderators time IP addresses out of generating and
registering."""

from __future__ import annotations

import time

from fastapi import APIRouter

from openhorde.api.deps import ApiUser, CountersDep, StoreDep
from openhorde.api.schemas.ip_timeouts import (
    AddTimeoutIPInput,
    AddWorkerTimeout,
    DeleteTimeoutIPInput,
    IPTimeoutOut,
    SimpleResponse,
)
from openhorde.domain import ip_timeouts, workers

router = APIRouter(prefix="/operations", tags=["moderation"])


@router.get("/ipaddr", response_model=list[IPTimeoutOut], summary="Timed-out IP addresses (moderators)")
async def list_ip_timeouts(user: ApiUser, counters: CountersDep) -> list[IPTimeoutOut]:
    found = await ip_timeouts.list_timeouts(counters, user, time.time())
    return [IPTimeoutOut(ipaddr=t.ipaddr, seconds=t.seconds) for t in found]


@router.post("/ipaddr", response_model=SimpleResponse, summary="Time an IP address out (moderators)")
async def add_ip_timeout(
    body: AddTimeoutIPInput, store: StoreDep, user: ApiUser, counters: CountersDep
) -> SimpleResponse:
    await ip_timeouts.add_timeout(store, counters, user, body.ipaddr, body.hours, time.time())
    return SimpleResponse()


@router.delete("/ipaddr", response_model=SimpleResponse, summary="Remove an IP address from timeout (moderators)")
async def delete_ip_timeout(
    body: DeleteTimeoutIPInput, store: StoreDep, user: ApiUser, counters: CountersDep
) -> SimpleResponse:
    await ip_timeouts.remove_timeout(store, counters, user, body.ipaddr, time.time())
    return SimpleResponse()


@router.get("/ipaddr/{ipaddr}", response_model=list[IPTimeoutOut], summary="Whether an IP address is timed out")
async def ip_timeouts_of(ipaddr: str, user: ApiUser, counters: CountersDep) -> list[IPTimeoutOut]:
    found = await ip_timeouts.timeouts_matching(counters, user, ipaddr, time.time())
    return [IPTimeoutOut(ipaddr=t.ipaddr, seconds=t.seconds) for t in found]


@router.put(
    "/block_worker_ipaddr/{worker_id}",
    response_model=SimpleResponse,
    summary="Time out a worker's address for days (moderators; IPv6: its /64)",
)
async def block_worker_ip(
    worker_id: str, body: AddWorkerTimeout, store: StoreDep, user: ApiUser, counters: CountersDep
) -> SimpleResponse:
    worker = await workers.get_worker(store, worker_id)
    await ip_timeouts.block_worker_ip(store, counters, user, worker, body.days, time.time())
    return SimpleResponse()


@router.delete(
    "/block_worker_ipaddr/{worker_id}", response_model=SimpleResponse, summary="Lift a worker's address block"
)
async def unblock_worker_ip(worker_id: str, store: StoreDep, user: ApiUser, counters: CountersDep) -> SimpleResponse:
    worker = await workers.get_worker(store, worker_id)
    await ip_timeouts.unblock_worker_ip(store, counters, user, worker, time.time())
    return SimpleResponse()

"""``GET /generate/request/{id}``: what a request asked for, as it was queued (after the prompt filters).

Only its requester or a moderator may read it: unlike its status, it holds the prompt and the webhook address.
Source images are not sent back (the request keeps them as stored blobs); ``source_image`` is left out.
"""

from __future__ import annotations

from openhorde.errors import NotOwner, RequestNotFound
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.request_payloads import RequestPayload as RequestPayload
from openhorde.storage.store import Store


async def get_payload(store: Store, viewer: Account, request_id: str) -> RequestPayload:
    """The request's payload, for its requester or a moderator."""
    payload = await store.request_payloads.get(request_id)
    if payload is None:
        raise RequestNotFound()
    if payload.user_id != viewer.id and not (viewer.is_moderator or viewer.is_admin):
        raise NotOwner("Only the requester or a moderator can read what a request asked for.")
    return payload

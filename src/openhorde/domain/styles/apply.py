"""The style step of ``POST /generate/async``: a request's ``style`` sets its prompt, params and models.

It runs before the request is checked and priced, as on the AI Horde, so every rule for a request applies to
the styled one. What the AI Horde does, and so we do:

* ``style`` is a style's or collection's id, or a name (``user#id::style::name``, ``user#id::collection::name``
  or a bare name, styles first); a collection gives one of its styles at random.
* The prompt is the style's template with ``{p}`` replaced by the request's prompt and ``{np}`` by its negative
  part (after the first ``###``); if the template has no ``###`` of its own, a negative part brings its own.
* The params are the style's; the request keeps its ``n``, and its width and height where the style sets none.
  The models are the style's (its LoRAs and embeddings come with the params).
* A style may carry a shared key: while that key is usable, requests made with the style are paid by it.
* Each use counts (``use_count``), and the style's owner earns 2 kudos.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openhorde.domain.accounts import Account
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.domain.sharedkeys import Caller
from openhorde.domain.styles.collections import find_collection
from openhorde.domain.styles.common import IMAGE, Style
from openhorde.domain.styles.records import find_style, usable
from openhorde.errors import SharedKeyAssignedStyles, StyleMismatch, StyleNotFound
from openhorde.storage.store import Store

if TYPE_CHECKING:
    from openhorde.domain.queue.requests import NewRequest

STYLE_OWNER_REWARD_KUDOS = 2
"""What a style's owner earns each time someone else's request uses it (the AI Horde's ``record_style``)."""
NEGATIVE_SEPARATOR = "###"
_VARIABLE = re.compile(r"\{(p|np)\}")
_CLIENT_KEPT_SIZE = ("width", "height")


@dataclass(frozen=True)
class StyleUse:
    """The style a request was made with: what to count and whom to reward once it is queued."""

    style_id: str
    style_name: str
    owner_id: int
    collection_id: str | None = None
    sharedkey_id: str | None = None


@dataclass(frozen=True)
class Resolved:
    """What a styled request runs with, as a dry run shows it: the prompt (and its negative part), params, models."""

    prompt: str
    negative_prompt: str
    params: dict[str, Any]
    models: list[str]
    style_id: str
    style_name: str


async def _resolve(store: Store, wanted: str) -> tuple[Style, str | None]:
    """The style ``wanted`` names, and the collection it was picked from (if it names one)."""
    style = await store.styles.get(wanted) or await find_style(store, wanted)
    collection = None
    if style is None:
        collection = await store.styles.get_collection(wanted) or await find_collection(store, wanted)
        if collection is not None:
            members = (await store.styles.members_of([collection.id])).get(collection.id, [])
            if members:
                style = await store.styles.get(random.choice(members).style_id)
    if style is None:
        raise StyleNotFound(f"Style '{wanted}' not found.")
    if style.style_type != IMAGE:
        raise StyleMismatch("Text styles cannot be used for image requests.")
    return style, collection.id if collection is not None else None


def styled_prompt(template: str, prompt: str) -> str:
    """The style's template filled with the request's prompt and its negative part.

    The template is filled in one pass over ``{p}`` and ``{np}`` only: the AI Horde uses ``str.format``, which
    fails on any other brace in a template and would fill a ``{np}`` that the user's own prompt contains.
    """
    positive, separator, negative = prompt.partition(NEGATIVE_SEPARATOR)
    if separator and negative and NEGATIVE_SEPARATOR not in template:
        negative = NEGATIVE_SEPARATOR + negative
    values = {"p": positive, "np": negative}
    return _VARIABLE.sub(lambda match: values[match.group(1)], template)


async def apply_style(store: Store, new: NewRequest) -> None:
    """Replace ``new``'s prompt, params and models with those of the style it names; note the use in ``new``."""
    if new.style is None:
        return
    style, collection_id = await _resolve(store, new.style)
    params = dict(style.params)
    for name in _CLIENT_KEPT_SIZE:
        if name not in params and name in new.params:
            params[name] = new.params[name]
    new.prompt = styled_prompt(style.prompt, new.prompt)
    new.params = params  # ``n`` lives outside the params (``NewRequest.n``), so the request's is kept
    new.models = list(style.models)
    new.style_use = StyleUse(style.id, style.name, style.user_id, collection_id, style.sharedkey_id)


def resolved(new: NewRequest, use: StyleUse) -> Resolved:
    """The styled request ``new`` as a dry run answers it (``resolved``, as the AI Horde's dry runs do)."""
    _, _, negative = new.prompt.partition(NEGATIVE_SEPARATOR)
    params = {**new.params, "n": new.n}
    return Resolved(new.prompt, negative.strip(), params, list(new.models), use.style_id, use.style_name)


async def paying_caller(store: Store, caller: Caller, new: NewRequest) -> Caller:
    """Who a request acts for: the style's shared key's owner while that key is usable, else the caller.

    A shared key a style pays with works only through the style (``SharedKeyAssignedStyles``), so that whoever
    learns it cannot spend its budget on other prompts.
    """
    if caller.sharedkey is not None and await store.styles.is_sharedkey_bound(caller.sharedkey.id):
        raise SharedKeyAssignedStyles()
    use = new.style_use
    if use is None or use.sharedkey_id is None:
        return caller
    key_hash = await store.styles.sharedkey_hash(use.sharedkey_id)
    found = await store.sharedkeys.with_owner(key_hash) if key_hash is not None else None
    if found is None:
        return caller
    key, owner = found
    if owner.is_deleted or not usable(key, time.time()):
        return caller  # as on the AI Horde: a spent or expired style key leaves the request to its caller
    return Caller(owner, key)


async def record_use(store: Store, use: StyleUse, requester: Account, request_id: str) -> None:
    """Count a queued request's use of its style (and collection); pay the style's owner 2 kudos.

    The reward is minted, as on the AI Horde; an owner using their own style earns nothing, so that styles are
    no kudos tap.
    """
    await store.styles.count_use(use.style_id)
    if use.collection_id is not None:
        await store.styles.count_collection_use(use.collection_id)
    if use.owner_id == requester.id:
        return
    cents = ledger.kudos_to_cents(STYLE_OWNER_REWARD_KUDOS)
    await ledger.record(
        store,
        TransactionKind.STYLE,
        request_id,
        [Posting(SystemAccount.MINT, -cents), Posting(use.owner_id, cents)],
        memo=f"style {use.style_id}",
    )

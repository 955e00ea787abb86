"""The kinds of form, what each costs and earns, the form lifecycle, and where post-processed images live.

Form lifecycle::

    waiting ──(a) an alchemist popped it ──────────────────────▶ processing
       └────(b) the client cancelled ──────────────────────────▶ cancelled
    processing ──(c) the alchemist submitted a result ─────────▶ done
        │──────(d) faulted or lease ran out, aborted < 3 times ─▶ waiting
        └──────(e) faulted or lease ran out a 4th time ─────────▶ faulted

A cancel ends only the waiting forms: a form already being worked on is still delivered and paid, as an image
of a cancelled image request is. (The AI Horde marks those cancelled too, and then refuses their submit.)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import cache

from openhorde.domain.post_processors import POST_PROCESSORS  # the AI Horde's post-processors are forms too
from openhorde.errors import InvalidStateTransition
from openhorde.storage.lifecycle import Transition

CAPTION = "caption"
INTERROGATION = "interrogation"
NSFW = "nsfw"
NEWER_TEXT_FORMS = ("vectorize", "palette", "describe", "aesthetic")
"""Forms the reference server added after its published swagger (``ai-horde-server.md`` lists them): text
results at the plain form price, like ``caption``."""
FORM_NAMES = (CAPTION, INTERROGATION, NSFW, *POST_PROCESSORS, *NEWER_TEXT_FORMS)
"""Every form a client may ask for and an alchemist may offer (the reference's list)."""

TILE_SIDE = 512
MAX_IMAGE_TILES = 255
"""Larger images (in 512×512 tiles) are refused: an alchemist would run out of memory post-processing them."""
MAX_WORKER_TILES = 256
DEFAULT_WORKER_TILES = 16
FORM_LEASE_SECONDS = 3 * 60
"""A form popped and not submitted within this long goes back to the queue (the reference's form TTL)."""
MAX_FORM_ABORTS = 3
"""A form taken back this many times faults at its next abort (the reference's ``abort_count > 2``)."""
CONCURRENCY_FACTOR = 10
"""A user may have their image concurrency times this many forms waiting or in progress."""
FORM_KUDOS = 1
INTERROGATION_KUDOS = 3
POST_PROCESSOR_KUDOS_PER_TILE = 3
HORDE_CUT_KUDOS = 1
"""What a requester pays on top of the alchemist's reward for every form (burnt)."""
FAST_WORKERS_KUDOS = 1
"""Paid on top again when the client turned ``slow_workers`` off."""
FAST_WORKER_FORMS_PER_SECOND = 0.1
"""An alchemist averaging at least this many forms per second (under 10 s a form) may take fast-only forms."""


def image_tiles(width: int, height: int) -> int:
    """How many 512×512 tiles cover an image of this size."""
    return -(-width // TILE_SIDE) * -(-height // TILE_SIDE)


def is_post_processor(name: str) -> bool:
    """Whether the form's result is an image."""
    return name in POST_PROCESSORS


def reward_cents(name: str, tiles: int) -> int:
    """What an alchemist earns for a form, in hundredths: 1 kudo, 3 for ``interrogation``, 3 per tile for a
    post-processor (the reference's form kudos)."""
    if name == INTERROGATION:
        return INTERROGATION_KUDOS * 100
    if is_post_processor(name):
        return POST_PROCESSOR_KUDOS_PER_TILE * tiles * 100
    return FORM_KUDOS * 100


def charge_cents(reward: int, slow_workers: bool) -> int:
    """What the requester pays for a form: the reward, 1 kudo more, and 1 more again when only fast workers may
    serve it.

    The AI Horde's code adds the second kudo when ``slow_workers`` is *on*, while its documentation says that
    turning it off costs extra; we charge as documented."""
    return reward + HORDE_CUT_KUDOS * 100 + (0 if slow_workers else FAST_WORKERS_KUDOS * 100)


class FormState(StrEnum):
    """Where a form is in its life."""

    WAITING = "waiting"
    PROCESSING = "processing"
    DONE = "done"
    FAULTED = "faulted"
    CANCELLED = "cancelled"


FORM_TRANSITIONS: dict[FormState, frozenset[FormState]] = {
    FormState.WAITING: frozenset({FormState.PROCESSING, FormState.CANCELLED}),
    FormState.PROCESSING: frozenset({FormState.DONE, FormState.WAITING, FormState.FAULTED}),
    FormState.DONE: frozenset(),
    FormState.FAULTED: frozenset(),
    FormState.CANCELLED: frozenset(),
}


def check_form_transition(current: FormState, target: FormState) -> None:
    """Raise ``InvalidStateTransition`` unless a form may go from ``current`` to ``target``."""
    if target not in FORM_TRANSITIONS[current]:
        raise InvalidStateTransition(f"A {current} form cannot become {target}.")


@cache
def form_transition(target: FormState) -> Transition:
    """The change into ``target`` with every state the table lets a form leave for it."""
    sources = tuple(sorted(state.value for state, targets in FORM_TRANSITIONS.items() if target in targets))
    return Transition(target.value, sources)


def overall_state(states: Iterable[str]) -> str:
    """An interrogation's state from its forms' (the reference's rule): ``faulted`` if all faulted, ``done`` if
    all done, else ``processing`` if any is, ``waiting`` if any is, and ``partial`` for a mix of ended forms.
    We say ``cancelled`` when every form was cancelled, where the reference says ``partial``."""
    found = list(states)
    if found and all(s == FormState.FAULTED for s in found):
        return FormState.FAULTED.value
    if all(s == FormState.DONE for s in found):
        return FormState.DONE.value
    if any(s == FormState.PROCESSING for s in found):
        return FormState.PROCESSING.value
    if any(s == FormState.WAITING for s in found):
        return FormState.WAITING.value
    if all(s == FormState.CANCELLED for s in found):
        return FormState.CANCELLED.value
    return "partial"


UPLOAD_FOLDER = "alchemy"
RESULT_FOLDER = "alchemized"


def upload_key(form_id: str) -> str:
    """Where an alchemist uploads a post-processed image (its ``r2_upload`` URL) while it holds the form."""
    return f"{UPLOAD_FOLDER}/{form_id}.webp"


def form_of_upload_key(key: str) -> str | None:
    """The form id in an upload key; ``None`` if ``key`` is not one."""
    folder, _, name = key.partition("/")
    return name.removesuffix(".webp") if folder == UPLOAD_FOLDER and name.endswith(".webp") else None


def result_key(form_id: str) -> str:
    """Where a delivered post-processed image lives: copied from the upload at the submit, so the upload URL
    cannot change it afterwards."""
    return f"{RESULT_FOLDER}/{form_id}.webp"

"""``domain.interrogations.forms``: tiles, prices, the form lifecycle and an interrogation's overall state."""

from __future__ import annotations

import itertools

import pytest

from openhorde.api.schemas.interrogate import FormName
from openhorde.domain.interrogations.forms import (
    FORM_NAMES,
    FORM_TRANSITIONS,
    MAX_IMAGE_TILES,
    FormState,
    charge_cents,
    check_form_transition,
    form_of_upload_key,
    form_transition,
    image_tiles,
    overall_state,
    reward_cents,
    upload_key,
)
from openhorde.errors import InvalidStateTransition

ALLOWED = [(a, b) for a, targets in FORM_TRANSITIONS.items() for b in sorted(targets)]
FORBIDDEN = [pair for pair in itertools.product(FormState, repeat=2) if pair not in ALLOWED]


def test_the_wire_offers_exactly_the_known_forms() -> None:
    assert set(FormName.__args__) == set(FORM_NAMES)


@pytest.mark.parametrize(
    ("size", "tiles"), [((1, 1), 1), ((512, 512), 1), ((513, 512), 2), ((1100, 600), 6), ((8192, 8192), 256)]
)
def test_tiles_cover_the_image(size: tuple[int, int], tiles: int) -> None:
    assert image_tiles(*size) == tiles
    assert (tiles > MAX_IMAGE_TILES) == (size == (8192, 8192))


def test_rewards_and_charges_follow_the_reference() -> None:
    assert [reward_cents(name, 4) for name in ("caption", "nsfw", "interrogation", "GFPGAN")] == [100, 100, 300, 1200]
    assert charge_cents(300, slow_workers=True) == 400
    assert charge_cents(300, slow_workers=False) == 500


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=str)
def test_allowed_transition_passes(current: FormState, target: FormState) -> None:
    check_form_transition(current, target)
    assert current.value in form_transition(target).sources


@pytest.mark.parametrize(("current", "target"), FORBIDDEN, ids=str)
def test_forbidden_transition_raises(current: FormState, target: FormState) -> None:
    with pytest.raises(InvalidStateTransition):
        check_form_transition(current, target)


@pytest.mark.parametrize(
    ("states", "overall"),
    [
        (["waiting", "waiting"], "waiting"),
        (["done", "waiting"], "waiting"),
        (["done", "processing"], "processing"),
        (["done", "done"], "done"),
        (["faulted", "faulted"], "faulted"),
        (["done", "faulted"], "partial"),
        (["done", "cancelled"], "partial"),
        (["cancelled"], "cancelled"),
    ],
)
def test_overall_state(states: list[str], overall: str) -> None:
    assert overall_state(states) == overall


def test_upload_keys_name_their_form() -> None:
    assert form_of_upload_key(upload_key("abc")) == "abc"
    assert form_of_upload_key("results/abc.webp") is None

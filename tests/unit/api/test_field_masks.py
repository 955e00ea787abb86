"""``X-Fields`` masks: parsing the header and keeping the fields it names."""

from __future__ import annotations

import pytest

from openhorde.api.field_masks import apply_mask, parse_mask
from openhorde.errors import InvalidFieldMask

USER = {"id": 7, "username": "alice#7", "kudos_details": {"accumulated": 5, "gifted": 1}, "workers": ["w1"]}


@pytest.mark.parametrize(
    ("header", "mask"),
    [
        ("id", {"id": None}),
        ("{id, username}", {"id": None, "username": None}),
        (" id ,kudos_details{accumulated}", {"id": None, "kudos_details": {"accumulated": None}}),
        ("a{b{c}},d", {"a": {"b": {"c": None}}, "d": None}),
        ("*", {"*": None}),
    ],
)
def test_masks_parse(header: str, mask: dict[str, object]) -> None:
    assert parse_mask(header) == mask


@pytest.mark.parametrize("header", ["id}", "{id", "a{b", "a,{b}", ",", "a" * 2_001])
def test_malformed_masks_are_refused(header: str) -> None:
    with pytest.raises(InvalidFieldMask):
        parse_mask(header)


def test_a_mask_keeps_what_it_names_in_objects_and_lists() -> None:
    assert apply_mask(USER, parse_mask("username,kudos_details{gifted},missing")) == {
        "username": "alice#7",
        "kudos_details": {"gifted": 1},
    }
    assert apply_mask([USER, USER], parse_mask("id")) == [{"id": 7}, {"id": 7}]
    assert apply_mask(USER, parse_mask("kudos_details{accumulated},*")) == {
        **USER,
        "kudos_details": {"accumulated": 5},
    }
    assert apply_mask(3, parse_mask("id")) == 3

"""``domain.styles.apply``: filling a style's template, and reading style references."""

from __future__ import annotations

import pytest

from openhorde.domain.styles.apply import styled_prompt
from openhorde.domain.styles.common import Reference, parse_reference


@pytest.mark.parametrize(
    ("template", "prompt", "expected"),
    [
        ("{p}, noir###{np}, colour", "a cat###blurry", "a cat, noir###blurry, colour"),
        ("{p}, noir###{np}, colour", "a cat", "a cat, noir###, colour"),
        ("{p}, sketch{np}", "a boat###rain", "a boat, sketch###rain"),  # the negative part brings its ###
        ("{p}, sketch{np}", "a boat", "a boat, sketch"),
        ("{p}{np}", "a###b###c", "a###b###c"),  # only the first ### splits
        ("{p} {x} {{p}}{np}", "cat", "cat {x} {cat}"),  # no format fields or escapes: only {p}, {np}
        ("{p}|{np}", "say {np}###{p}", "say {np}|###{p}"),  # the user's own braces are not filled in
    ],
)
def test_a_template_is_filled_with_the_prompt_and_its_negative_part(template: str, prompt: str, expected: str) -> None:
    assert styled_prompt(template, prompt) == expected


def test_references_name_a_style_or_a_collection_of_one_user() -> None:
    assert parse_reference("Noir") == Reference("Noir")
    assert parse_reference("db0#1::style::Noir") == Reference("Noir", 1, "style")
    assert parse_reference("db0#1::collection::Moods") == Reference("Moods", 1, "collection")
    assert parse_reference("nobody::style::Noir") == Reference("Noir", -1, "style")
    assert parse_reference("a::b") == Reference("a::b")

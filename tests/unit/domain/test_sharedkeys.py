"""``domain/sharedkeys``: how a shared key is told apart from an API key, and derived from its row."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from openhorde.domain.accounts import new_api_key
from openhorde.domain.sharedkeys import key_of, looks_like_shared_key


@given(st.uuids())
def test_every_canonical_uuid_looks_like_a_shared_key(value: uuid.UUID) -> None:
    assert looks_like_shared_key(str(value))
    assert looks_like_shared_key(str(value).upper())


@given(st.integers(min_value=0, max_value=50))
def test_api_keys_and_the_anonymous_key_never_do(_: int) -> None:
    assert not looks_like_shared_key(new_api_key())
    assert not looks_like_shared_key("0000000000")


@given(st.text(min_size=36, max_size=36))
def test_other_36_character_strings_do_not(text: str) -> None:
    try:
        canonical = str(uuid.UUID(text)) == text.lower()
    except ValueError:
        canonical = False
    assert looks_like_shared_key(text) == canonical


def test_a_key_is_a_stable_uuid_that_depends_on_the_row_and_the_secret() -> None:
    row = str(uuid.uuid4())
    key = key_of("secret", row)
    assert looks_like_shared_key(key) and key == key_of("secret", row)
    assert key != key_of("other secret", row) and key != key_of("secret", str(uuid.uuid4()))
    assert row not in key

"""``domain.queue.seeds``: client seed text to the integer a worker uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openhorde.domain.queue.seeds import SEED_MODULUS, job_seed, parse_seed


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("42", 42), ("  1234 ", 1234), ("4294967295", 2**32 - 1)])
def test_digits_are_read_as_a_number(text: str, expected: int) -> None:
    assert parse_seed(text) == expected


def test_large_numbers_wrap_below_2_32() -> None:
    assert parse_seed(str(2**32 + 5)) == 5


@given(text=st.text(min_size=1).filter(lambda s: s.strip() != ""))
def test_text_seeds_are_deterministic_and_below_2_32(text: str) -> None:
    seed = parse_seed(text)
    assert seed is not None
    assert 0 <= seed < SEED_MODULUS
    assert parse_seed(text) == seed


@pytest.mark.parametrize("text", ["²", "12³", "٣", "①"])
def test_non_ascii_digits_are_text_not_numbers(text: str) -> None:
    # str.isdigit() accepts these, but int() rejects some; they are hashed as text like any other.
    assert parse_seed(text) == int.from_bytes(text.encode(), "little") % SEED_MODULUS


def test_different_text_gives_different_seeds() -> None:
    assert parse_seed("The little seed that could") != parse_seed("another seed")


@pytest.mark.parametrize("text", [None, "", " ", "\t\n"])
def test_missing_or_blank_seed_means_random(text: str | None) -> None:
    assert parse_seed(text) is None


def test_job_seed_adds_the_variation_per_image() -> None:
    assert [job_seed(100, 7, index) for index in range(3)] == [100, 107, 114]
    assert job_seed(100, 0, 5) == 100


def test_job_seed_wraps_below_2_32() -> None:
    assert job_seed(SEED_MODULUS - 1, 1, 1) == 0
    assert job_seed(SEED_MODULUS - 10, 7, 3) == 11


@given(base=st.integers(0, SEED_MODULUS - 1), variation=st.integers(0, 1000), index=st.integers(0, 20))
def test_job_seed_is_always_a_valid_seed(base: int, variation: int, index: int) -> None:
    assert 0 <= job_seed(base, variation, index) < SEED_MODULUS


def test_random_seeds_differ() -> None:
    seeds = {job_seed(None, 1, 0) for _ in range(20)}
    assert len(seeds) > 1
    assert all(0 <= seed < SEED_MODULUS for seed in seeds)

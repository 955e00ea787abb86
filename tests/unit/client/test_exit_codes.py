"""Which exit status each client error gets."""

from __future__ import annotations

import pytest

from openhorde.client.exit_codes import ExitCode, exit_code_for
from openhorde.client.sdk import (
    ApiError,
    NotAHordeApi,
    RequestCancelled,
    RequestFaulted,
    RequestTimedOut,
    ServerUnreachable,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ApiError("no", rc="InvalidAPIKey"), 1),
        (ServerUnreachable("down"), 3),
        (NotAHordeApi("html"), 3),
        (RequestFaulted("faulted"), 4),
        (RequestCancelled("cancelled"), 4),
        (RequestTimedOut("late"), 4),
    ],
)
def test_each_error_has_its_exit_code(error: ApiError, code: int) -> None:
    assert exit_code_for(error) == code


def test_the_exit_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]

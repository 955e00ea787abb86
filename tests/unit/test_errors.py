"""``openhorde.errors``: every ``HordeError`` renders as ``{message, rc}`` with a known, unique rc."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openhorde import errors
from openhorde.errors import EXTENSION_RCS, HordeError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SERVER_NOTES = SHARED / "reference" / "ai-horde-server.md"


def _subclasses(cls: type[HordeError]) -> list[type[HordeError]]:
    found: list[type[HordeError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


ALL_ERRORS: list[type[HordeError]] = [HordeError, *_subclasses(HordeError)]


def test_the_tree_is_walked() -> None:
    assert len(ALL_ERRORS) > 30
    assert all(cls.__module__ == errors.__name__ for cls in ALL_ERRORS)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_error_has_message_status_and_body(cls: type[HordeError]) -> None:
    docstring = (cls.__dict__.get("__doc__") or "").strip()
    assert docstring, f"{cls.__name__} needs a docstring: it is the default message"
    assert 400 <= cls.status < 600
    error = cls()
    body = error.to_body()
    assert body["message"] == docstring.splitlines()[0]
    assert body["rc"] == cls.rc
    assert cls().to_body()["message"]


def test_message_and_extra_fields_can_be_overridden() -> None:
    body = errors.ValidationFailed("nope", errors={"prompt": "missing"}).to_body()
    assert body == {"message": "nope", "rc": "ValidationError", "errors": {"prompt": "missing"}}


def test_rcs_are_unique() -> None:
    seen: dict[str, str] = {}
    for cls in ALL_ERRORS:
        assert cls.rc not in seen, f"{cls.__name__} and {seen[cls.rc]} share rc {cls.rc}"
        seen[cls.rc] = cls.__name__


def test_every_rc_is_the_ai_horde_s_or_a_declared_extension() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the reference material) is not checked out")
    notes = SERVER_NOTES.read_text(encoding="utf-8")
    unknown = [
        f"{cls.__name__}: {cls.rc}"
        for cls in ALL_ERRORS
        if cls.rc not in EXTENSION_RCS and not re.search(rf"(?<![\w.]){re.escape(cls.rc)}(?![\w])", notes)
    ]
    assert not unknown, f"rcs neither in {SERVER_NOTES.name} nor in EXTENSION_RCS: {unknown}"


def test_extensions_are_not_ai_horde_rcs() -> None:
    """An rc we call our own must not shadow one the AI Horde already defines."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the reference material) is not checked out")
    notes = SERVER_NOTES.read_text(encoding="utf-8")
    clashing = sorted(rc for rc in EXTENSION_RCS if re.search(rf"`{re.escape(rc)}`", notes))
    assert not clashing, f"EXTENSION_RCS lists AI Horde rcs: {clashing}"

import pytest
import typer

from openhorde.client.interrogate import _forms, describe
from openhorde.client.wire import InterrogationStatus, WireError


def test_text_results_read_on_one_line() -> None:
    ranking = {"tags": [{"text": "cat", "confidence": 31.25}, {"text": "sky", "confidence": 12}]}
    assert describe("interrogation", ranking) == "tags: cat (31.2), sky (12.0)"
    assert describe("nsfw", True) == "yes" and describe("nsfw", False) == "no"
    assert describe("caption", "a cat") == "a cat"


def test_forms_are_checked_and_repeats_dropped() -> None:
    assert _forms(["caption", "nsfw", "caption"]) == ["caption", "nsfw"]
    with pytest.raises(typer.BadParameter, match="vectorise"):
        _forms(["vectorise"])


def test_an_interrogation_status_is_parsed_and_knows_when_it_has_ended() -> None:
    status = InterrogationStatus.from_wire(
        {
            "state": "partial",
            "forms": [
                {"form": "caption", "state": "done", "result": {"caption": "x"}},
                {"form": "nsfw", "state": "cancelled"},
            ],
        }
    )
    assert status.done and status.forms[0].result == {"caption": "x"} and status.forms[1].result is None
    assert not InterrogationStatus.from_wire({"state": "processing", "forms": []}).done
    with pytest.raises(WireError):
        InterrogationStatus.from_wire({"forms": []})

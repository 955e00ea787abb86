"""``models:`` names and selectors (``top N``, ``ALL …``) against the catalogue, the reference and the disk budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from openhorde.worker.models.catalogue import Catalogue, ModelEntry, UnknownModel, parse_catalogue
from openhorde.worker.models.download import DiskBudgetExceeded
from openhorde.worker.models.selection import is_selector, plan_models, select_models
from openhorde.worker.models.store import ModelStore
from tests.file_server import reference_json, reference_record

MIB = 1 << 20


def entry(name: str, baseline: str = "sd1", nsfw: bool = False, size: int = MIB) -> ModelEntry:
    return ModelEntry(
        name=name,
        baseline=baseline,  # type: ignore[arg-type]
        nsfw=nsfw,
        file=f"{name}.safetensors",
        url=f"http://h/{name}",
        size_bytes=size,
        source="reference",
    )


REFERENCE = {
    model.name: model
    for model in [
        entry("A"),
        entry("B", "sdxl"),
        entry("C", "sdxl", nsfw=True),
        entry("D", "sd2"),
        entry("Big", size=40 * MIB),
    ]
}
POPULARITY = {"C": 50, "A": 30, "D": 20, "Unknown upstream": 99}


def catalogue() -> Catalogue:
    return Catalogue().over(REFERENCE)


def names(requested: list[str], store: ModelStore, popularity: dict[str, int] | None = None) -> list[str]:
    return select_models(requested, catalogue(), store, lambda: popularity or {}).names


def test_selectors_are_told_from_names() -> None:
    assert all(map(is_selector, ["top 3", "TOP 10", "ALL", "all sdxl", "ALL SFW MODELS", "ALL inpainting"]))
    assert not any(map(is_selector, ["topaz", "ALL IN ONE", "Deliberate", "top"]))


def test_top_n_takes_the_most_requested_models_this_worker_can_load(tmp_path: Path) -> None:
    assert names(["top 2"], ModelStore(tmp_path), POPULARITY) == ["C", "A"]
    assert names(["top 10"], ModelStore(tmp_path), POPULARITY) == ["C", "A", "D"]  # only requested ones
    assert names(["A", "top 2", "B"], ModelStore(tmp_path), POPULARITY) == ["A", "C", "B"]


def test_all_kinds_follow_popularity_then_name(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert names(["ALL SDXL"], store, POPULARITY) == ["C", "B"]
    assert names(["all sfw models"], store, POPULARITY) == ["A", "D", "B", "Big"]
    assert names(["ALL NSFW"], store) == ["C"]
    assert names(["ALL SD15"], store) == ["A", "Big"]


def test_all_stops_at_the_disk_budget_and_says_what_it_left_out(tmp_path: Path) -> None:
    (tmp_path / "A.safetensors").write_bytes(b"a" * MIB)  # already there: needs no room
    store = ModelStore(tmp_path, budget_bytes=4 * MIB)
    selection = select_models(["ALL"], catalogue(), store, lambda: POPULARITY)
    assert selection.names == ["C", "A", "D", "B"]
    assert list(selection.left_out) == ["Big"] and "budget" in selection.left_out["Big"]


def test_a_local_catalogue_entry_wins_over_the_reference(tmp_path: Path) -> None:
    local = parse_catalogue({"models": [{"name": "A", "baseline": "sdxl", "file": "mine/a.safetensors"}]})
    merged = local.over(REFERENCE)
    assert merged.model("A").source == "catalogue" and merged.model("A").file == "mine/a.safetensors"
    assert merged.model("B").source == "reference"
    # ALL picks reference models only; the owner's own entries are served by name.
    assert select_models(["ALL SDXL"], merged, ModelStore(tmp_path)).names == ["B", "C"]


def test_an_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="Model 'Nope' is not in the worker's catalogue"):
        names(["A", "Nope"], ModelStore(tmp_path))
    with pytest.raises(UnknownModel, match="selects no model"):
        names(["top 3"], ModelStore(tmp_path), {})


def write_reference(tmp_path: Path) -> str:
    path = tmp_path / "stable_diffusion.json"
    records = [
        reference_record("Deliberate", files=[("deliberate.safetensors", b"d" * 1000, "http://h/d")]),
        reference_record("Cascade", baseline="stable_cascade", files=[("c.safetensors", b"c", "http://h/c")]),
    ]
    path.write_bytes(reference_json(*records))
    return str(path)


def test_plan_reads_the_reference_only_for_names_the_catalogue_lacks(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    plan = plan_models(["openhorde-tiny"], Catalogue(), store, str(tmp_path / "missing.json"))
    assert plan.names == ["openhorde-tiny"] and plan.reference is None
    plan = plan_models(["Deliberate", "openhorde-tiny"], Catalogue(), store, write_reference(tmp_path))
    assert plan.names == ["Deliberate", "openhorde-tiny"] and plan.reference is not None
    assert plan.catalogue.model("Deliberate").source == "reference"


def test_plan_refuses_unservable_names_and_files_over_the_budget(tmp_path: Path) -> None:
    reference = write_reference(tmp_path)
    with pytest.raises(UnknownModel, match="stable_cascade model"):
        plan_models(["Cascade"], Catalogue(), ModelStore(tmp_path), reference)
    with pytest.raises(UnknownModel, match=r"neither in the worker's catalogue nor in the model reference .*json"):
        plan_models(["Typo"], Catalogue(), ModelStore(tmp_path), reference)
    with pytest.raises(DiskBudgetExceeded, match=r"Downloading Deliberate needs .* budget"):
        plan_models(["Deliberate"], Catalogue(), ModelStore(tmp_path / "s", budget_bytes=500), reference)

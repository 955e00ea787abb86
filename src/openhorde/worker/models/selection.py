"""Turning the ``models:`` setting into model names: plain names, and selectors in the style of the AI Horde worker.

``models:`` lists names (from the local catalogue or the model reference, the local entry winning) and
selectors, case-insensitive, expanded in order with duplicates dropped:

* ``top N``: the N models most requested on the horde the worker serves (its image model stats of the
  past month, else its queue), among those this worker can load;
* ``ALL``, ``ALL SD15``, ``ALL SD2``, ``ALL SDXL``, ``ALL SFW``, ``ALL NSFW``, ``ALL INPAINTING`` (a trailing
  ``MODELS`` is allowed): every loadable reference model of that kind, most requested first, for as
  long as they fit the disk budget and the disk's free space; models that do not fit are left out.

Plain names and ``top N`` models are all kept; whether their files fit is checked at start-up, which
refuses to start with a clear message rather than fill the disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from openhorde.worker.models.catalogue import Catalogue, ModelEntry, UnknownModel
from openhorde.worker.models.download import DiskBudgetExceeded
from openhorde.worker.models.reference import Reference, load_reference
from openhorde.worker.models.store import ModelStore

Popularity = Callable[[], Mapping[str, int]]
"""Requests per model name on the horde (fetched only when a selector needs it)."""

_TOP = re.compile(r"^top\s+(\d+)$", re.IGNORECASE)
_ALL = re.compile(r"^all(?:\s+(sd15|sd1|sd2|sdxl|sfw|nsfw|inpainting))?(?:\s+models)?$", re.IGNORECASE)
_KINDS: dict[str, Callable[[ModelEntry], bool]] = {
    "": lambda entry: True,
    "sd15": lambda entry: entry.baseline == "sd1",
    "sd1": lambda entry: entry.baseline == "sd1",
    "sd2": lambda entry: entry.baseline == "sd2",
    "sdxl": lambda entry: entry.baseline == "sdxl",
    "sfw": lambda entry: not entry.nsfw,
    "nsfw": lambda entry: entry.nsfw,
    "inpainting": lambda entry: entry.inpainting,
}


def is_selector(name: str) -> bool:
    """Whether a ``models:`` item is a selector (``top N``, ``ALL …``) rather than a model name."""
    text = name.strip()
    return bool(_TOP.match(text) or _ALL.match(text))


@dataclass
class Selection:
    """The names chosen, and the models an ``ALL`` selector left out for want of room (with the reason)."""

    names: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)


def select_models(
    requested: list[str],
    catalogue: Catalogue,
    store: ModelStore,
    popularity: Popularity | None = None,
) -> Selection:
    """Expand ``requested`` against ``catalogue`` (local entries over the reference's); raises ``UnknownModel``."""
    selection = Selection()
    known: dict[str, int] | None = None

    def counts() -> dict[str, int]:
        nonlocal known
        if known is None:
            known = dict(popularity()) if popularity is not None else {}
        return known

    def ranking() -> list[str]:
        # Most requested first; models nobody asked for follow in name order, so the choice is stable.
        return sorted(catalogue.models, key=lambda name: (-counts().get(name, 0), name.lower()))

    for item in requested:
        text = item.strip()
        if top := _TOP.match(text):
            asked = [name for name in ranking() if counts().get(name, 0) > 0]
            _add(selection, asked[: int(top.group(1))])
        elif every := _ALL.match(text):
            test = _KINDS[(every.group(1) or "").lower()]
            candidates = [name for name in ranking() if catalogue.models[name].source == "reference"]
            _add_while_room(selection, [name for name in candidates if test(catalogue.models[name])], catalogue, store)
        else:
            catalogue.model(text)  # raises UnknownModel naming the known models
            _add(selection, [text])
    if not selection.names:
        raise UnknownModel(f"The models setting {requested} selects no model this worker can serve.")
    return selection


def _add(selection: Selection, names: list[str]) -> None:
    for name in names:
        if name not in selection.names:
            selection.names.append(name)


def _add_while_room(selection: Selection, names: list[str], catalogue: Catalogue, store: ModelStore) -> None:
    """Add each model whose missing files still fit beside those already chosen; note the others."""
    for name in names:
        if name in selection.names:
            continue
        chosen = [catalogue.models[other] for other in selection.names]
        try:
            store.check_room([*chosen, catalogue.models[name]])
        except DiskBudgetExceeded as exc:
            selection.left_out[name] = str(exc)
            continue
        selection.names.append(name)


@dataclass
class ModelPlan:
    """What a worker will serve: the names, the catalogue they come from, and the reference read (if any)."""

    names: list[str]
    catalogue: Catalogue
    reference: Reference | None = None
    left_out: dict[str, str] = field(default_factory=dict)


def plan_models(
    requested: list[str],
    catalogue: Catalogue,
    store: ModelStore,
    reference_location: str | None,
    popularity: Popularity | None = None,
) -> ModelPlan:
    """The models to serve, their files checked to fit the disk budget; the reference is read only if needed.

    Raises ``UnknownModel`` for a name that neither the catalogue nor the reference can serve,
    ``ReferenceUnavailable`` when the reference is needed but can be neither fetched nor read from the
    cache, and ``DiskBudgetExceeded`` when the missing files would not fit.
    """
    needed = [name for name in requested if is_selector(name) or name.strip() not in catalogue.models]
    reference = None
    if needed and reference_location:
        reference = load_reference(reference_location, store)
        catalogue = catalogue.over(reference.entries())
    for name in requested:
        text = name.strip()
        if is_selector(text) or text in catalogue.models:
            continue
        why = reference.why_unusable(text) if reference is not None else None
        where = f"the model reference {reference.source}" if reference is not None else "a model reference"
        raise UnknownModel(why or f"Model '{text}' is neither in the worker's catalogue nor in {where}.")
    selection = select_models(requested, catalogue, store, popularity)
    store.check_room([catalogue.models[name] for name in selection.names])
    return ModelPlan(selection.names, catalogue, reference, selection.left_out)

"""The model catalogue: the model names workers may serve, seeded with the well-known ones."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources

from openhorde.errors import BadRequest, ModelNotFound
from openhorde.model_reference import ReferenceModel
from openhorde.storage.events import EVERYTHING, Change
from openhorde.storage.repositories.catalogue import CatalogueEntry
from openhorde.storage.store import Store

DEFAULT_MODEL = "stable_diffusion"
"""The model a request or worker means when it names none."""

KNOWN_BASELINES = frozenset(
    {
        "stable diffusion 1",
        "stable diffusion 2",
        "stable diffusion 2 512",
        "stable_diffusion_xl",
        "stable_cascade",
        "flux_1",
        "qwen_image",
        "z_image_turbo",
    }
)


ModelEntry = CatalogueEntry
"""One catalogue entry: name, baseline, inpainting, nsfw, description, showcases."""
MAX_MODEL_NAME_CHARS = 255
"""The longest model name the catalogue holds (its column's length)."""


def seed_entries() -> list[ModelEntry]:
    """The well-known models every new horde starts with (``domain/data/models.json``)."""
    raw = json.loads(resources.files("openhorde.domain").joinpath("data/models.json").read_text())
    return [ModelEntry(**item) for item in raw]


async def ensure_seeded(store: Store) -> None:
    """Add any seed model missing from the catalogue (entries the admin changed are kept)."""
    await store.catalogue.add_missing(seed_entries())


async def add_model(store: Store, entry: ModelEntry) -> ModelEntry:
    """Add or replace a catalogue entry (an admin action)."""
    if entry.baseline not in KNOWN_BASELINES:
        raise BadRequest(f"Unknown baseline '{entry.baseline}'; use one of {sorted(KNOWN_BASELINES)}.")
    await store.catalogue.put(entry)
    _changed(store)
    return entry


@dataclass(frozen=True)
class ImportReport:
    """What an import of a model reference did: the names added or updated, and those skipped with why."""

    imported: list[str]
    skipped: dict[str, str]


def entry_from_reference(model: ReferenceModel) -> ModelEntry:
    """The catalogue entry for a model reference record (name, baseline, flags, description, showcases)."""
    return ModelEntry(
        name=model.name,
        baseline=model.baseline,
        inpainting=model.inpainting,
        nsfw=model.nsfw,
        description=model.description,
        showcases=model.showcases,
    )


async def import_models(store: Store, models: dict[str, ReferenceModel]) -> ImportReport:
    """Add or update a catalogue entry for every reference record of a known baseline (an admin action).

    Records of other baselines (post-processors, future architectures) are skipped and reported; an entry
    the reference does not list is kept, so an admin's own models survive a re-import.
    """
    imported: list[str] = []
    skipped: dict[str, str] = {}
    for name, model in models.items():
        if model.baseline not in KNOWN_BASELINES:
            skipped[name] = f"unknown baseline '{model.baseline}'" if model.baseline else "no baseline"
            continue
        if not name or len(name) > MAX_MODEL_NAME_CHARS:
            skipped[name] = f"a model name must be 1 to {MAX_MODEL_NAME_CHARS} characters"
            continue
        await store.catalogue.put(entry_from_reference(model))
        imported.append(name)
    if imported:
        _changed(store)
    return ImportReport(imported, skipped)


async def remove_model(store: Store, name: str) -> None:
    """Remove a catalogue entry (an admin action)."""
    if not await store.catalogue.remove(name):
        raise ModelNotFound(f"Model '{name}' is not in the catalogue.")
    _changed(store)


async def list_models(store: Store) -> list[ModelEntry]:
    """Every catalogue entry, by name."""
    return await store.catalogue.every()


CATALOGUE_SUBJECT = "catalogue"
NAMES_CACHE_SECONDS = 10.0
"""How long a process trusts its copy of the catalogue's names; a change announced by a server process is seen
at once, one made by ``openhorde admin`` (another process, which may have no broker) within this time."""


@dataclass
class CatalogueNames:
    """This process's copy of the catalogue's model names: a new request names models on every call."""

    names: frozenset[str] | None = None
    read_at: float = 0.0

    def on_change(self, change: Change) -> None:
        """A broker listener: read the names again after a catalogue change."""
        if change.subject in (CATALOGUE_SUBJECT, EVERYTHING):
            self.names = None


def _changed(store: Store) -> None:
    store.announce(Change(CATALOGUE_SUBJECT, "changed"))


async def known_names(store: Store, names: list[str], cache: CatalogueNames) -> set[str]:
    """The subset of ``names`` that the catalogue knows (from ``cache`` while it is fresh)."""
    if not names:
        return set()
    now = time.monotonic()
    if cache.names is None or now - cache.read_at >= NAMES_CACHE_SECONDS:
        cache.names, cache.read_at = await store.catalogue.names(), now
    return set(cache.names.intersection(names))

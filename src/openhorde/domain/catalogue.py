"""The model catalogue: the model names workers may serve, seeded with the well-known ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.errors import BadRequest, ModelNotFound
from openhorde.storage.tables import CatalogueModel

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


@dataclass(frozen=True)
class ModelEntry:
    """One catalogue entry."""

    name: str
    baseline: str
    inpainting: bool
    nsfw: bool
    description: str


def seed_entries() -> list[ModelEntry]:
    """The well-known models every new horde starts with (``domain/data/models.json``)."""
    raw = json.loads(resources.files("openhorde.domain").joinpath("data/models.json").read_text())
    return [ModelEntry(**item) for item in raw]


async def ensure_seeded(session: AsyncSession) -> None:
    """Add any seed model missing from the catalogue (entries the admin changed are kept)."""
    present = set(await session.scalars(select(CatalogueModel.name)))
    for entry in seed_entries():
        if entry.name not in present:
            session.add(CatalogueModel(**entry.__dict__))
    await session.flush()


async def add_model(session: AsyncSession, entry: ModelEntry) -> CatalogueModel:
    """Add or replace a catalogue entry (an admin action)."""
    if entry.baseline not in KNOWN_BASELINES:
        raise BadRequest(f"Unknown baseline '{entry.baseline}'; use one of {sorted(KNOWN_BASELINES)}.")
    model = await session.get(CatalogueModel, entry.name)
    if model is None:
        model = CatalogueModel(**entry.__dict__)
        session.add(model)
    else:
        model.baseline, model.inpainting = entry.baseline, entry.inpainting
        model.nsfw, model.description = entry.nsfw, entry.description
    await session.flush()
    return model


async def remove_model(session: AsyncSession, name: str) -> None:
    """Remove a catalogue entry (an admin action)."""
    model = await session.get(CatalogueModel, name)
    if model is None:
        raise ModelNotFound(f"Model '{name}' is not in the catalogue.")
    await session.delete(model)


async def list_models(session: AsyncSession) -> list[CatalogueModel]:
    """Every catalogue entry, by name."""
    return list(await session.scalars(select(CatalogueModel).order_by(CatalogueModel.name)))


async def known_names(session: AsyncSession, names: list[str]) -> set[str]:
    """The subset of ``names`` that the catalogue knows."""
    if not names:
        return set()
    return set(await session.scalars(select(CatalogueModel.name).where(CatalogueModel.name.in_(names))))

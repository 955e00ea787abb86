"""The catalogue repository and an import from a model reference, on each database engine."""

from __future__ import annotations

import pytest

from openhorde.domain import catalogue
from openhorde.model_reference import ReferenceModel
from openhorde.storage.db import Database

pytestmark = pytest.mark.both_databases  # showcases are a JSON column, read and written by each engine


async def test_an_import_stores_showcases_and_skips_unknown_baselines(migrated_database: Database) -> None:
    models = {
        "AlbedoBase XL (SDXL)": ReferenceModel(
            "AlbedoBase XL (SDXL)", "stable_diffusion_xl", nsfw=True, showcases=("https://x/1.webp", "https://x/2.webp")
        ),
        "RealESRGAN_x4plus": ReferenceModel("RealESRGAN_x4plus", "", type="realesrgan"),
        "Future": ReferenceModel("Future", "some_new_family"),
    }
    async with migrated_database.store() as store:
        report = await catalogue.import_models(store, models)
    assert report.imported == ["AlbedoBase XL (SDXL)"]
    assert report.skipped == {"RealESRGAN_x4plus": "no baseline", "Future": "unknown baseline 'some_new_family'"}
    async with migrated_database.store() as store:
        entries = {entry.name: entry for entry in await catalogue.list_models(store)}
        await catalogue.ensure_seeded(store)  # seeding again keeps the imported entry as it is
        again = {entry.name: entry for entry in await catalogue.list_models(store)}
    albedo = entries["AlbedoBase XL (SDXL)"]
    assert (albedo.baseline, albedo.nsfw, albedo.showcases) == (
        "stable_diffusion_xl",
        True,
        ("https://x/1.webp", "https://x/2.webp"),
    )
    assert again["AlbedoBase XL (SDXL)"] == albedo
    assert again["stable_diffusion"].showcases == ()  # the seed's entries have none

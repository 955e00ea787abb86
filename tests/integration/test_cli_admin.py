"""``openhorde admin``: the real command line, run as a subprocess against a migrated database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from openhorde.domain import accounts, catalogue
from openhorde.storage.db import Database
from openhorde.storage.secrets import load_or_create_secret
from openhorde.storage.tables import User
from tests.file_server import reference_json, reference_record, serving

# `openhorde admin` processes (seconds each: a Python start and the server's imports).
pytestmark = pytest.mark.e2e


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


@dataclass
class Cli:
    """Runs ``python -m openhorde admin …`` on one data directory and database."""

    data_dir: Path
    database_url: str
    cwd: Path

    async def __call__(self, command: str, *args: str) -> Ran:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENHORDE_") and k != "FORCE_COLOR"}
        env.update(OPENHORDE_DATABASE_URL=self.database_url, COLUMNS="200", NO_COLOR="1")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "openhorde",
            "admin",
            command,
            "--data-dir",
            str(self.data_dir),
            *args,
            cwd=self.cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return Ran(process.returncode, stdout.decode(), stderr.decode())

    async def ok(self, command: str, *args: str) -> str:
        ran = await self(command, *args)
        assert ran.code == 0, (command, args, ran)
        return ran.stdout

    async def create_user(self, name: str, *options: str) -> tuple[int, str]:
        """Create a user; its id and API key, read from what the command prints."""
        out = await self.ok("create-user", name, *options)
        match = re.search(r"Created (.+)#(\d+); API key: (\S+)", out)
        assert match, out
        assert match.group(1) == name
        return int(match.group(2)), match.group(3)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    # On SQLite the database file is tmp_path/data/horde.db: the data directory a server would use.
    return Cli(data_dir=tmp_path / "data", database_url=database_url, cwd=tmp_path)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def _user(db: Database, user_id: int) -> User:
    async with db.unit_of_work() as session:
        row = await session.get(User, user_id)
        assert row is not None
        return row


async def test_create_user_prints_a_key_that_authenticates(cli: Cli, db: Database) -> None:
    user_id, api_key = await cli.create_user("cli-user", "--kudos", "50", "--role", "trusted", "--role", "customizer")
    assert len(api_key) == accounts.API_KEY_LENGTH

    # The key works with the secret a server on this data directory would load.
    secret = load_or_create_secret(cli.data_dir)
    async with db.store() as store:
        user = await accounts.authenticate(store, secret, accounts.KeyCache(), api_key)
        assert user.id == user_id and user.username == "cli-user"
        assert await store.accounts.balance(user.id) == 5000
        assert user.is_trusted and user.is_customizer and not user.is_admin
    second_id, second_key = await cli.create_user("cli-user")
    assert second_id != user_id and second_key != api_key

    refused = await cli("create-user", "bad#name")
    assert refused.code == 1 and "Error" in refused.stderr and "Traceback" not in refused.stderr + refused.stdout


async def test_grant_set_role_and_set_concurrency(cli: Cli, db: Database) -> None:
    user_id, _ = await cli.create_user("operator")

    assert f"User {user_id} now has 25.0 kudos." in await cli.ok("grant", str(user_id), "25")
    assert "now has 19.5 kudos." in await cli.ok("grant", "--", str(user_id), "-5.5")
    await cli.ok("set-role", str(user_id), "moderator")
    await cli.ok("set-role", str(user_id), "admin")
    await cli.ok("set-role", str(user_id), "trusted")
    await cli.ok("set-role", str(user_id), "trusted", "--off")
    assert "may now queue 7 images" in await cli.ok("set-concurrency", str(user_id), "7")

    user = await _user(db, user_id)
    assert user.kudos_cents == 1950
    assert user.is_moderator and user.is_admin and not user.is_trusted
    assert user.concurrency == 7

    unknown_user = await cli("grant", "999999", "10")
    assert unknown_user.code == 1 and "not found" in unknown_user.stderr
    assert "Traceback" not in unknown_user.stderr + unknown_user.stdout
    unknown_role = await cli("set-role", str(user_id), "wizard")
    assert unknown_role.code != 0 and "Unknown role" in unknown_role.stderr
    assert (await _user(db, user_id)).kudos_cents == 1950


async def test_add_model_and_list_models(cli: Cli, db: Database) -> None:
    listed = await cli.ok("models")
    assert "stable_diffusion_inpainting" in listed and "my-model" not in listed

    await cli.ok("add-model", "my-model", "--baseline", "stable_diffusion_xl", "--inpainting")
    listed = await cli.ok("models")
    line = next(row for row in listed.splitlines() if "my-model" in row)
    assert "stable_diffusion_xl" in line and "True" in line
    async with db.store() as store:
        assert "my-model" in {m.name for m in await catalogue.list_models(store)}

    refused = await cli("add-model", "other-model", "--baseline", "no such baseline")
    assert refused.code == 1 and "Unknown baseline" in refused.stderr
    assert "other-model" not in await cli.ok("models")

    await cli.ok("remove-model", "my-model")
    assert "my-model" not in await cli.ok("models")
    missing = await cli("remove-model", "my-model")
    assert missing.code == 1 and "not in the catalogue" in missing.stderr


async def test_import_models_fills_the_catalogue_from_a_reference(cli: Cli, db: Database, tmp_path: Path) -> None:
    albedo = reference_record(
        "AlbedoBase XL (SDXL)",
        baseline="stable_diffusion_xl",
        nsfw=True,
        showcases=["https://example.org/albedo/01.webp"],
        description="Generalist SDXL.",
    )
    cascade = reference_record("Stable Cascade 1.0", baseline="stable_cascade")
    upscaler = {"name": "RealESRGAN_x4plus", "type": "realesrgan", "config": {"files": [], "download": []}}
    with serving() as server:
        url = server.publish("stable_diffusion.json", reference_json(albedo, cascade, upscaler))
        ran = await cli("import-models", url)
    assert ran.code == 0, ran
    assert "Imported 2 models" in ran.stdout and "Skipped 'RealESRGAN_x4plus': no baseline" in ran.stderr
    async with db.store() as store:
        entries = {entry.name: entry for entry in await catalogue.list_models(store)}
        # The upstream name is now one a request may name (what POST /generate/async checks).
        assert await catalogue.known_names(store, ["AlbedoBase XL (SDXL)"], catalogue.CatalogueNames()) == {
            "AlbedoBase XL (SDXL)"
        }
    assert entries["AlbedoBase XL (SDXL)"] == catalogue.ModelEntry(
        "AlbedoBase XL (SDXL)",
        "stable_diffusion_xl",
        False,
        True,
        "Generalist SDXL.",
        ("https://example.org/albedo/01.webp",),
    )
    assert entries["Stable Cascade 1.0"].baseline == "stable_cascade"
    assert "stable_diffusion_inpainting" in entries  # the models the reference does not list are kept

    # A file works as well as a URL; a re-import updates the entries.
    path = tmp_path / "ref.json"
    path.write_bytes(reference_json({**albedo, "nsfw": False}))
    assert "Imported 1 models" in await cli.ok("import-models", str(path))
    async with db.store() as store:
        assert not {e.name: e for e in await catalogue.list_models(store)}["AlbedoBase XL (SDXL)"].nsfw

    broken = await cli("import-models", str(tmp_path / "missing.json"))
    assert broken.code == 1 and "cannot read" in broken.stderr


async def test_check_ledger_reports_as_json_and_fails_on_a_mismatch(cli: Cli, db: Database) -> None:
    user_id, _ = await cli.create_user("saver", "--kudos", "100")
    await cli.ok("grant", "--", str(user_id), "-40")

    report = json.loads(await cli.ok("check-ledger"))
    assert report == {
        "ok": True,
        "sum_of_postings_cents": 0,
        "unbalanced_transactions": [],
        "balance_mismatches": [],
        "escrow_held_cents": 0,
        "escrow_account_cents": 0,
    }

    async with db.unit_of_work() as session:  # a balance edited behind the ledger's back
        await session.execute(update(User).where(User.id == user_id).values(kudos_cents=User.kudos_cents + 1))
    broken = await cli("check-ledger")
    assert broken.code == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False and report["balance_mismatches"] == [[user_id, 6001, 6000]]

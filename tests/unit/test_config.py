"""Settings in groups keep their flat names: keyword arguments, OPENHORDE_* variables, the .env file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from openhorde.config import GROUP_OF, GROUPS, BlobSettings, Settings


def test_every_grouped_setting_has_one_group_and_a_description() -> None:
    names = [name for model in GROUPS.values() for name in model.model_fields]
    assert len(names) == len(set(names)) == len(GROUP_OF)
    assert not set(names) & set(Settings.model_fields)
    assert all(field.description for field in Settings.flat_fields().values())


def test_flat_keyword_arguments_go_into_their_group() -> None:
    settings = Settings(_env_file=None, max_upload_bytes=5000, rate_limits="off", no_such_setting=1)
    assert settings.blobs.max_upload_bytes == 5000
    assert settings.limits.rate_limits == "off"
    assert not hasattr(settings, "no_such_setting")


def test_a_value_given_in_its_group_wins_over_its_flat_name() -> None:
    settings = Settings(_env_file=None, blobs=BlobSettings(max_upload_bytes=7), max_upload_bytes=9, s3_prefix="p/")
    assert (settings.blobs.max_upload_bytes, settings.blobs.s3_prefix) == (7, "p/")


def test_flat_environment_variables_and_the_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OPENHORDE_S3_PREFIX=from-file/\nOPENHORDE_JOB_LEASE_SECONDS=100\nOPENHORDE_PORT=7100\n")
    monkeypatch.setenv("OPENHORDE_JOB_LEASE_SECONDS", "200")
    monkeypatch.setenv("openhorde_escrow_share", "0.25")
    settings = Settings(_env_file=env_file)
    assert settings.blobs.s3_prefix == "from-file/"
    assert settings.queue.job_lease_seconds == 200  # the environment before the file
    assert settings.economy.escrow_share == 0.25
    assert settings.port == 7100
    assert Settings(_env_file=env_file, job_lease_seconds=300).queue.job_lease_seconds == 300


def test_constraints_and_validators_hold_in_groups() -> None:
    with pytest.raises(ValidationError, match="escrow_share"):
        Settings(_env_file=None, escrow_share=2)
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(_env_file=None, trusted_proxies="not an address")


def test_export_to_environment_writes_flat_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, max_upload_bytes=4096, webhook_max_attempts=3)
    with monkeypatch.context() as patch:
        for name in Settings.flat_fields():  # set, then unset: leaving the context removes what the export wrote
            patch.setenv(f"OPENHORDE_{name.upper()}", "")
            patch.delenv(f"OPENHORDE_{name.upper()}")
        settings.export_to_environment()
        assert Settings(_env_file=None) == settings
    assert "OPENHORDE_MAX_UPLOAD_BYTES" not in os.environ

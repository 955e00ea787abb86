"""docs/deploy.md lists every setting of config.Settings, grouped ones by their flat name."""

from __future__ import annotations

import re
from pathlib import Path

from openhorde.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def test_every_setting_is_in_the_deploy_doc() -> None:
    table = DOC.read_text().split("## Every setting", 1)[1]
    listed = set(re.findall(r"^\| `(OPENHORDE_[A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    expected = {f"OPENHORDE_{name.upper()}" for name in Settings.flat_fields()}
    missing = sorted(expected - listed)
    assert not missing, f"add these to docs/deploy.md (python scripts/settings_table.py prints the tables): {missing}"
    assert not sorted(listed - expected), "docs/deploy.md lists settings that no longer exist"

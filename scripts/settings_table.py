"""Print the Markdown tables of every setting (for docs/deploy.md): ``python scripts/settings_table.py``.

One table for the process-level settings, then one per group of ``config.Settings`` (``settings.<group>.<name>``
in code); each setting's default and description are its field's.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from openhorde.config import GROUPS, Settings


def _row(name: str, field: FieldInfo) -> str:
    default = "unset" if field.default is None else f"`{field.default}`"
    if field.default == "":
        default = '`""`'
    description = " ".join((field.description or "").split()).replace("|", "\\|")
    return f"| `OPENHORDE_{name.upper()}` | {default} | {description} |"


def _table(fields: dict[str, FieldInfo]) -> list[str]:
    return ["| Variable | Default | Meaning |", "|---|---|---|", *(_row(name, f) for name, f in fields.items())]


def markdown() -> str:
    process = {name: field for name, field in Settings.model_fields.items() if name not in GROUPS}
    lines = ["### The server process", "", *_table(process)]
    for group, model in GROUPS.items():
        lines += ["", f"### `{group}`", "", _doc(model), "", *_table(model.model_fields)]
    return "\n".join(lines)


def _doc(model: type[BaseModel]) -> str:
    """The group's docstring, on one line."""
    return " ".join((model.__doc__ or "").split())


if __name__ == "__main__":
    print(markdown())

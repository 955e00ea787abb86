"""Print the Markdown table of every setting (for docs/deploy.md): ``python scripts/settings_table.py``.

Descriptions come from the field's ``description``, else from the docstring of the ``DEFAULT_*``
constant it defaults to (read from config.py's source).
"""

from __future__ import annotations

import ast
import inspect
import itertools

from openhorde import config
from openhorde.config import Settings


def _constant_docs() -> dict[str, str]:
    body = ast.parse(inspect.getsource(config)).body
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.targets[0].id] = " ".join(following.value.value.split())
    return docs


def _field_constants() -> dict[str, str]:
    """Setting name -> the DEFAULT_* constant named in its declaration."""
    tree = ast.parse(inspect.getsource(Settings))
    found: dict[str, str] = {}
    for node in tree.body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names = [n.id for n in ast.walk(node.value) if isinstance(n, ast.Name) and n.id.startswith("DEFAULT_")]
            if names:
                found[node.target.id] = names[0]
    return found


FALLBACK = {
    "host": "Address the server listens on (0.0.0.0 for every interface).",
    "port": "Port the server listens on.",
    "data_dir": "Directory of the SQLite database, the generated secret and the local blob store.",
    "redis_key_prefix": "Prefix of every Redis key (to share one Redis between hordes).",
    "log_level": "debug, info, warning or error.",
}
"""Descriptions of settings declared without one (config.py documents them by name only)."""


def rows() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting."""
    docs, constants = _constant_docs(), _field_constants()
    table = []
    for name, field in Settings.model_fields.items():
        description = field.description or docs.get(constants.get(name, ""), "") or FALLBACK.get(name, "")
        default = "unset" if field.default is None else f"`{field.default}`"
        if field.default == "":
            default = '`""`'
        table.append((f"OPENHORDE_{name.upper()}", default, description.replace("|", "\\|")))
    return table


def markdown() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | {default} | {text} |" for env, default, text in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())

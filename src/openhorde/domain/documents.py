"""The horde's documents (``/documents/terms``, ``/privacy``, ``/sponsors``): Markdown, also served as HTML.

Each document is the operator's file ``<data_dir>/documents/<name>.md`` if there is one, else the default that
ships with the package (``domain/data/documents/``), written for a private horde. The file is read on each call
(they are rare), so an edit shows at once without a restart.

The HTML is rendered by markdown-it (CommonMark) with raw HTML turned off: any ``<tag>`` in the Markdown comes
out escaped, and links with a script scheme (``javascript:``, ``vbscript:``...) are not made links, so an
operator's document cannot put a script on the pages that show it.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Literal

from markdown_it import MarkdownIt

DocumentName = Literal["terms", "privacy", "sponsors"]
DOCUMENT_NAMES: tuple[DocumentName, ...] = ("terms", "privacy", "sponsors")
DOCUMENTS_DIR = "documents"
"""The folder of the data directory where the operator's documents override the defaults."""
MAX_DOCUMENT_BYTES = 1_048_576
"""What is read of an operator's document at most (1 MiB): the rest is left out."""

_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def _read(data_dir: Path, name: DocumentName) -> str:
    own = data_dir / DOCUMENTS_DIR / f"{name}.md"
    if own.is_file():
        with own.open("rb") as file:
            return file.read(MAX_DOCUMENT_BYTES).decode("utf-8", errors="replace")
    return resources.files("openhorde.domain").joinpath(f"data/documents/{name}.md").read_text(encoding="utf-8")


async def markdown(data_dir: Path, name: DocumentName) -> str:
    """A document's Markdown: the operator's file, else the default."""
    return await asyncio.to_thread(_read, data_dir, name)


def to_html(text: str) -> str:
    """Markdown rendered as HTML, with raw HTML escaped and script links dropped (see the module docstring)."""
    html: str = _MARKDOWN.render(text)
    return html

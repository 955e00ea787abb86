"""``/documents/*``: the terms, the privacy policy and the sponsors, as HTML or Markdown.

The operator edits them as files in the data directory (``domain/documents.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from openhorde.api.deps import ContextDep
from openhorde.api.schemas.documents import HordeDocument
from openhorde.domain import documents
from openhorde.domain.documents import DocumentName

router = APIRouter(prefix="/documents", tags=["documents"])

Format = Annotated[Literal["html", "markdown"], Query(description="HTML (the default) or the Markdown source.")]


async def _document(ctx: ContextDep, name: DocumentName, format: str) -> HordeDocument:
    text = await documents.markdown(ctx.settings.data_dir, name)
    return HordeDocument(markdown=text) if format == "markdown" else HordeDocument(html=documents.to_html(text))


@router.get("/terms", response_model=HordeDocument, response_model_exclude_none=True, summary="Terms of service")
async def terms(ctx: ContextDep, format: Format = "html") -> HordeDocument:
    return await _document(ctx, "terms", format)


@router.get("/privacy", response_model=HordeDocument, response_model_exclude_none=True, summary="Privacy policy")
async def privacy(ctx: ContextDep, format: Format = "html") -> HordeDocument:
    return await _document(ctx, "privacy", format)


@router.get("/sponsors", response_model=HordeDocument, response_model_exclude_none=True, summary="Sponsors")
async def sponsors(ctx: ContextDep, format: Format = "html") -> HordeDocument:
    return await _document(ctx, "sponsors", format)

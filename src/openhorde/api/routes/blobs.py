"""``/blobs/{key}``: the presigned upload and download URLs of the local blob store."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from openhorde.api.deps import ContextDep, DatabaseDep
from openhorde.api.openapi import errors
from openhorde.domain import images
from openhorde.domain.interrogations import handout
from openhorde.domain.queue import submit
from openhorde.errors import PayloadTooLarge

router = APIRouter(prefix="/blobs", tags=["images"])

Expires = Annotated[int, Query()]
Signature = Annotated[str, Query(min_length=64, max_length=64)]


@router.get(
    "/{folder}/{name}",
    summary="Download an image with a presigned URL",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, **errors(403)},
)
async def download(folder: str, name: str, expires: Expires, signature: Signature, ctx: ContextDep) -> Response:
    key = f"{folder}/{name}"
    ctx.blobs.verify("GET", key, expires, signature)
    return Response(
        await ctx.blobs.get(key), media_type="image/webp", headers={"Cache-Control": "private, max-age=600"}
    )


@router.head("/{folder}/{name}", include_in_schema=False)
async def download_head(folder: str, name: str, expires: Expires, signature: Signature, ctx: ContextDep) -> Response:
    """HEAD answers like GET without the body (browsers and download managers ask it before fetching)."""
    key = f"{folder}/{name}"
    ctx.blobs.verify("GET", key, expires, signature)
    size = len(await ctx.blobs.get(key))
    headers = {"Cache-Control": "private, max-age=600", "Content-Length": str(size)}
    return Response(media_type="image/webp", headers=headers)


@router.put(
    "/{folder}/{name}",
    status_code=200,
    responses=errors(403, 413),
    summary="Upload a job's image (or a post-processed form's) with a presigned URL",
    description="Accepted only while the job (or form) is being worked on: once it is submitted, faulted, expired or "
    "aborted the URL answers 403 `UploadClosed` and the delivered image stays as it was.",
)
async def upload(
    folder: str, name: str, expires: Expires, signature: Signature, request: Request, db: DatabaseDep, ctx: ContextDep
) -> Response:
    key = f"{folder}/{name}"
    ctx.blobs.verify("PUT", key, expires, signature)
    # A short unit of work of its own (no StoreDep): the body may take a while to arrive, and that wait must
    # not hold a database connection. A submit landing while it arrives copies the upload as it is then, so what
    # this PUT writes afterwards never reaches the delivered image.
    async with db.reader() as store:
        if not await handout.check_upload_open(store, key):  # an alchemist's post-processed image, or a job's
            await submit.check_upload_open(store, key)
    limit = ctx.settings.blobs.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
    webp = await asyncio.to_thread(
        images.check_result_upload, bytes(body), limit, ctx.settings.limits.max_source_pixels
    )
    await ctx.blobs.put(key, webp)
    return Response(status_code=200)

"""``/blobs/{key}``: the presigned upload and download URLs of the local blob store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from openhorde.api.deps import ContextDep
from openhorde.api.openapi import errors
from openhorde.domain import images
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


@router.put(
    "/{folder}/{name}", status_code=200, responses=errors(403, 413), summary="Upload a job's image with a presigned URL"
)
async def upload(
    folder: str, name: str, expires: Expires, signature: Signature, request: Request, ctx: ContextDep
) -> Response:
    key = f"{folder}/{name}"
    ctx.blobs.verify("PUT", key, expires, signature)
    limit = ctx.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
    webp = images.check_result_upload(bytes(body), limit, ctx.settings.max_source_pixels)
    await ctx.blobs.put(key, webp)
    return Response(status_code=200)

"""The blob store in an S3-compatible bucket (AWS S3, MinIO, R2, Ceph...), with boto3 presigned URLs.

Workers upload straight to the bucket (a presigned ``PUT``) and clients download from it (a presigned
``GET``), so image bytes never pass through the horde's processes. boto3 is synchronous: calls run in
a thread. Install the ``s3`` extra (``pip install openhorde[s3]``) to use it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from openhorde.errors import BlobNotFound, InvalidUploadSignature
from openhorde.storage.blobs import BlobBackend, BlobStore, is_valid_key

if TYPE_CHECKING:
    from openhorde.config import Settings

DELETE_BATCH = 1000
"""Most keys S3's DeleteObjects accepts at once."""


class S3BlobStore:
    """Images in ``bucket`` under ``prefix``, addressed by the same keys as the local store."""

    def __init__(self, client: Any, bucket: str, url_ttl_seconds: int, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self.url_ttl_seconds = url_ttl_seconds

    def _object(self, key: str) -> str:
        if not is_valid_key(key):
            raise BlobNotFound()
        return self.prefix + key

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``."""
        name = self._object(key)
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=name, Body=data, ContentType="image/webp"
        )

    async def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``BlobNotFound`` if there are none."""
        name = self._object(key)

        def _get() -> bytes:
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=name)
            except self._client.exceptions.NoSuchKey as exc:
                raise BlobNotFound() from exc
            body: bytes = answer["Body"].read()
            return body

        return await asyncio.to_thread(_get)

    async def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        name = self._object(key)

        def _head() -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=name)
            except self._client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True

        return await asyncio.to_thread(_head)

    async def copy(self, source_key: str, target_key: str) -> None:
        """Copy the object ``source_key`` to ``target_key`` inside the bucket; ``BlobNotFound`` if missing."""
        await self._copy_object(source_key, target_key)

    async def copy_if_absent(self, source_key: str, target_key: str) -> bool:
        """Copy the object unless ``target_key`` exists: False if it does; ``BlobNotFound`` if the source is
        missing. Asked first (HEAD), then copied on condition (``If-None-Match: *``, which AWS S3 enforces; a store
        that ignores it leaves the milliseconds between the two steps open to a copy that lands meanwhile)."""
        if await self.exists(target_key):
            return False
        return await self._copy_object(source_key, target_key, IfNoneMatch="*")

    async def _copy_object(self, source_key: str, target_key: str, **condition: str) -> bool:
        """CopyObject under ``condition`` (none: always); False when the condition refused it."""
        source, target = self._object(source_key), self._object(target_key)

        def _copy() -> bool:
            try:
                self._client.copy_object(
                    Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}, **condition
                )
            except self._client.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise BlobNotFound() from exc
                if condition and code in ("412", "PreconditionFailed"):
                    return False
                raise
            return True

        return await asyncio.to_thread(_copy)

    async def delete_many(self, keys: list[str]) -> None:
        """Remove the objects under ``keys``; missing ones are ignored."""
        names = [self.prefix + key for key in keys if is_valid_key(key)]

        def _delete() -> None:
            for start in range(0, len(names), DELETE_BATCH):
                batch = [{"Key": name} for name in names[start : start + DELETE_BATCH]]
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

        if names:
            await asyncio.to_thread(_delete)

    def presign(self, method: str, key: str, now: float | None = None) -> str:
        """A presigned S3 URL that lets its holder ``GET`` or ``PUT`` the object ``key`` until it expires.

        ``now`` is ignored: S3 signs with the current time (the links live ``url_ttl_seconds``)."""
        operation = {"GET": "get_object", "PUT": "put_object"}[method]
        url: str = self._client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": self._object(key)}, ExpiresIn=self.url_ttl_seconds
        )
        return url

    def verify(self, method: str, key: str, expires: int, signature: str, now: float | None = None) -> None:
        """The horde's own ``/blobs`` links are not in use with S3: every one is refused."""
        raise InvalidUploadSignature("This horde keeps its images in S3; use the link the horde gave you.")


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the ``s3_*`` settings (credentials from boto3's usual chain when unset)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(signature_version="s3v4", s3={"addressing_style": settings.blobs.s3_addressing_style})
    return boto3.client(
        "s3",
        endpoint_url=settings.blobs.s3_endpoint_url,
        region_name=settings.blobs.s3_region,
        aws_access_key_id=settings.blobs.s3_access_key_id,
        aws_secret_access_key=settings.blobs.s3_secret_access_key,
        config=config,
    )


def open_blob_store(settings: Settings, secret: str) -> BlobBackend:
    """The blob store the settings choose: local disk (default) or an S3 bucket."""
    if settings.blobs.blob_store == "s3":
        if not settings.blobs.s3_bucket:
            raise ValueError("OPENHORDE_BLOB_STORE=s3 needs OPENHORDE_S3_BUCKET")
        return S3BlobStore(
            s3_client(settings),
            settings.blobs.s3_bucket,
            settings.blobs.upload_url_ttl_seconds,
            settings.blobs.s3_prefix,
        )
    return BlobStore(settings.blob_dir, secret, settings.resolved_public_url, settings.blobs.upload_url_ttl_seconds)

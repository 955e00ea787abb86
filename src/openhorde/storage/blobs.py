"""The blob store (images) on local disk, with presigned URLs served by this server.

A presigned URL carries its method, key and expiry, signed with HMAC-SHA256 under the
server secret, like an S3 presigned URL. The server's ``/blobs/{key}`` route checks it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import threading
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

from openhorde.errors import BlobNotFound, InvalidUploadSignature
from openhorde.storage.files import private_dir, write_private

_KEY_PATTERN = re.compile(r"^[a-z]+/[A-Za-z0-9_.-]{1,150}$")


def is_valid_key(key: str) -> bool:
    """Whether ``key`` is a well-formed blob key (``folder/name``), safe to use as a path."""
    return bool(_KEY_PATTERN.fullmatch(key)) and ".." not in key


class BlobBackend(Protocol):
    """What the domain needs of a blob store: this local one, or ``s3_blobs.S3BlobStore``."""

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``."""

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``BlobNotFound`` if none."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        ...

    async def copy(self, source_key: str, target_key: str) -> None:
        """Store what is under ``source_key`` under ``target_key`` too; ``BlobNotFound`` if there is nothing.

        Later writes to ``source_key`` leave the copy as it was."""

    async def copy_if_absent(self, source_key: str, target_key: str) -> bool:
        """Like ``copy``, unless something is stored under ``target_key`` already: then nothing, and False."""
        ...

    async def delete_many(self, keys: list[str]) -> None:
        """Remove the blobs under ``keys``, ignoring missing ones."""

    def presign(self, method: str, key: str, now: float | None = None) -> str:
        """A time-limited URL to ``GET`` or ``PUT`` the blob ``key``."""
        ...

    def verify(self, method: str, key: str, expires: int, signature: str, now: float | None = None) -> None:
        """Check a ``/blobs`` link's signature; raise ``InvalidUploadSignature`` if wrong or expired."""


def _temporary_name(path: Path) -> Path:
    return path.with_suffix(path.suffix + f".{os.getpid()}.{threading.get_ident()}.tmp")


class BlobStore:
    """Images on local disk under ``root``, addressed by keys like ``results/<job id>.webp``."""

    def __init__(self, root: Path, secret: str, public_url: str, url_ttl_seconds: int) -> None:
        self.root = root
        self._secret = secret.encode()
        self.public_url = public_url.rstrip("/")
        self.url_ttl_seconds = url_ttl_seconds
        self._folders: set[Path] = set()
        """Folders known to exist: a write into one needs no look at the disk first."""

    def _path(self, key: str) -> Path:
        if not is_valid_key(key):
            raise BlobNotFound()
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, atomically replacing any earlier value."""
        await asyncio.to_thread(self._write, self._path(key), data)

    def _write(self, path: Path, data: bytes) -> None:
        self._folder(path.parent)
        tmp = _temporary_name(path)
        write_private(tmp, data)
        tmp.replace(path)

    def _folder(self, folder: Path) -> None:
        if folder in self._folders:
            return
        if not folder.is_dir():
            private_dir(self.root)
            private_dir(folder)
        self._folders.add(folder)

    async def copy(self, source_key: str, target_key: str) -> None:
        """Link ``target_key`` to the file of ``source_key`` (no bytes copied); ``BlobNotFound`` if missing.

        A later ``put`` to ``source_key`` writes a new file and renames it into place, so the link keeps the
        old contents."""
        await asyncio.to_thread(self._link, self._path(source_key), self._path(target_key))

    async def copy_if_absent(self, source_key: str, target_key: str) -> bool:
        """Link ``target_key`` to the file of ``source_key`` unless it exists (one step: of two racing calls one
        links); False if it does; ``BlobNotFound`` if the source is missing."""
        return await asyncio.to_thread(self._link_new, self._path(source_key), self._path(target_key))

    def _link_new(self, source: Path, target: Path) -> bool:
        self._folder(target.parent)
        try:
            os.link(source, target)
        except FileNotFoundError as exc:
            raise BlobNotFound() from exc
        except FileExistsError:
            return False
        return True

    def _link(self, source: Path, target: Path) -> None:
        if self._link_new(source, target):  # a new key, as a rule: one step
            return
        tmp = _temporary_name(target)  # replacing an existing key: link beside it, then rename over it
        os.link(source, tmp)
        try:
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)  # rename() does nothing when both names link one file: both stay

    async def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``BlobNotFound`` if there are none."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise BlobNotFound() from exc

    async def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        return await asyncio.to_thread(self._path(key).exists)

    async def delete_many(self, keys: list[str]) -> None:
        """Remove the blobs under ``keys``; missing ones are ignored."""

        def _delete() -> None:
            for key in keys:
                if is_valid_key(key):
                    (self.root / key).unlink(missing_ok=True)

        await asyncio.to_thread(_delete)

    def _signature(self, method: str, key: str, expires: int) -> str:
        message = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def presign(self, method: str, key: str, now: float | None = None) -> str:
        """A URL that lets its holder ``GET`` or ``PUT`` the blob ``key`` until it expires."""
        expires = int((now or time.time()) + self.url_ttl_seconds)
        query = urlencode({"expires": expires, "signature": self._signature(method, key, expires)})
        return f"{self.public_url}/blobs/{key}?{query}"

    def verify(self, method: str, key: str, expires: int, signature: str, now: float | None = None) -> None:
        """Raise ``InvalidUploadSignature`` unless the signature is right and not expired."""
        if expires < (now or time.time()):
            raise InvalidUploadSignature("This link has expired.")
        expected = self._signature(method, key, expires)
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidUploadSignature()

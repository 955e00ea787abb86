"""The S3 blob store against a real S3-compatible server on loopback (moto's server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from openhorde.domain.queue.leases import run_maintenance
from openhorde.errors import BlobNotFound
from tests.live_server import Horde, _free_socket, webp_bytes

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

BUCKET = "horde-images"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, **KEYS).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def horde_settings(s3_endpoint: str) -> dict[str, Any]:
    return {
        "blob_store": "s3",
        "s3_bucket": BUCKET,
        "s3_endpoint_url": s3_endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
        "s3_addressing_style": "path",
        "s3_prefix": "t/",
    }


def _objects(endpoint: str) -> set[str]:
    listing = boto3.client("s3", endpoint_url=endpoint, **KEYS).list_objects_v2(Bucket=BUCKET)
    return {item["Key"] for item in listing.get("Contents", [])}


async def test_images_go_to_and_come_from_the_bucket(horde: Horde, backend: str, s3_endpoint: str) -> None:
    if backend != "sqlite":
        pytest.skip("the blob store does not depend on the database")
    requester, owner = await horde.register("req"), await horde.register("owner")
    response = await horde.generate(requester, params={"width": 64, "height": 64, "steps": 5})
    request_id = response.json()["id"]
    job = await horde.pop(owner)
    upload = job["r2_upload"]
    assert upload.startswith(f"{s3_endpoint}/{BUCKET}/t/results/") and "Signature" in upload

    # Nothing uploaded yet: the submit is refused (the store's exists() asks the bucket).
    early = await horde.client.post(
        "/api/v2/generate/submit", json={"id": job["id"], "generation": "R2", "seed": 1}, headers=owner.headers
    )
    assert early.status_code == 400 and early.json()["rc"] == "ImageValidationFailed"

    image = webp_bytes()
    async with httpx.AsyncClient() as outside:
        assert (await outside.put(upload, content=image, headers={"Content-Type": "image/webp"})).status_code == 200
        submitted = await horde.client.post(
            "/api/v2/generate/submit", json={"id": job["id"], "generation": "R2", "seed": 1}, headers=owner.headers
        )
        assert submitted.status_code == 200, submitted.text
        status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
        url = status["generations"][0]["img"]
        assert url.startswith(f"{s3_endpoint}/{BUCKET}/t/images/")  # the delivered copy, not the upload
        downloaded = await outside.get(url)
        assert downloaded.status_code == 200 and downloaded.content == image
        # A late PUT to the upload URL (S3 cannot refuse it) does not reach the delivered image.
        assert (await outside.put(upload, content=webp_bytes(color=(0, 0, 9)))).status_code == 200
        assert (await outside.get(url)).content == image
    assert {f"t/results/{job['id']}.webp", f"t/images/{job['id']}.webp"} <= _objects(s3_endpoint)

    # The horde's own /blobs links are not in use with S3.
    refused = await horde.client.get(f"/blobs/results/{job['id']}.webp?expires=9999999999&signature={'0' * 64}")
    assert refused.status_code == 403 and "S3" in refused.json()["message"]

    # Retention removes the request and its object from the bucket.
    async with horde.db.store() as store:
        report = await run_maintenance(
            store, horde.ctx, time.time() + horde.settings.blobs.result_retention_seconds + 60
        )
    assert report.removed_requests == 1
    assert not {f"t/results/{job['id']}.webp", f"t/images/{job['id']}.webp"} & _objects(s3_endpoint)


async def test_base64_submits_and_source_images_are_stored_in_the_bucket(
    horde: Horde, backend: str, s3_endpoint: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the blob store does not depend on the database")
    import base64

    requester, owner = await horde.register("req"), await horde.register("owner")
    source = base64.b64encode(webp_bytes(color=(0, 200, 0))).decode()
    response = await horde.generate(
        requester, params={"width": 64, "height": 64, "steps": 5}, source_image=source, source_processing="img2img"
    )
    assert response.status_code == 202, response.text
    job = await horde.pop(owner, allow_img2img=True)
    assert job["source_image"].startswith(f"{s3_endpoint}/{BUCKET}/t/")
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(job["source_image"])).status_code == 200
    body = {"id": job["id"], "generation": base64.b64encode(webp_bytes()).decode(), "seed": 1}
    assert (await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)).status_code == 200
    assert f"t/images/{job['id']}.webp" in _objects(s3_endpoint)


async def test_a_copy_if_absent_never_replaces_an_object(horde: Horde, backend: str, s3_endpoint: str) -> None:
    """What a PostgreSQL submit uses to put an upload in place before its claim (``domain/queue/submit.py``)."""
    if backend != "sqlite":
        pytest.skip("the blob store does not depend on the database")
    blobs = horde.ctx.blobs
    await blobs.put("results/first.webp", b"first")
    await blobs.put("results/second.webp", b"second")
    assert await blobs.copy_if_absent("results/first.webp", "images/one.webp") is True
    assert await blobs.copy_if_absent("results/second.webp", "images/one.webp") is False
    assert await blobs.get("images/one.webp") == b"first"
    with pytest.raises(BlobNotFound):
        await blobs.copy_if_absent("results/missing.webp", "images/two.webp")

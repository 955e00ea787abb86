"""The delivered images of a request, written as ``<out>/<request-id>-<i>.webp`` with a JSON sidecar each."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openhorde.client.payload import ImageRequest, split_prompt
from openhorde.client.sdk import ApiError, HordeClient
from openhorde.client.wire import Generation


@dataclass(frozen=True)
class SavedImage:
    """One image written to disk, with its settings beside it."""

    path: Path
    sidecar: Path
    generation: Generation


def image_bytes(client: HordeClient, generation: Generation) -> bytes:
    """The image of a generation: downloaded when ``img`` is a URL (``r2``), else decoded from base64."""
    if generation.img.startswith(("http://", "https://")):
        return client.download(generation.img)
    try:
        return base64.b64decode(generation.img, validate=True)
    except (binascii.Error, ValueError) as exc:
        # The AI Horde sends "N/A" when it could not fetch an image from its own storage.
        raise ApiError(
            f"The server sent no usable image for generation {generation.id} ({generation.img[:20]!r})"
        ) from exc


def sidecar(
    request: ImageRequest, request_id: str, server_url: str, index: int, generation: Generation, image: Path
) -> dict[str, Any]:
    """The settings of one image, as written next to it."""
    positive, negative = split_prompt(request.full_prompt)
    params = request.params()
    params["seed"] = generation.seed  # the seed this very image was made with
    return {
        "request_id": request_id,
        "server": server_url,
        "index": index,
        "image": image.name,
        "generation_id": generation.id,
        "prompt": positive,
        "negative": negative,
        "model": generation.model,
        "seed": generation.seed,
        "worker_name": generation.worker_name,
        "worker_id": generation.worker_id,
        "censored": generation.censored,
        "params": params,
        "models_requested": list(request.models),
        "source_processing": request.source_processing if request.source_image is not None else None,
        "nsfw": request.nsfw,
        "censor_nsfw": request.censor_nsfw,
        "gen_metadata": [dict(item) for item in generation.gen_metadata],
    }


def save_generations(
    client: HordeClient,
    request: ImageRequest,
    request_id: str,
    generations: tuple[Generation, ...],
    out_dir: Path,
) -> list[SavedImage]:
    """Write every delivered image and its sidecar under ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[SavedImage] = []
    for index, generation in enumerate(generations):
        path = out_dir / f"{request_id}-{index}.webp"
        path.write_bytes(image_bytes(client, generation))
        notes = path.with_suffix(".json")
        settings = sidecar(request, request_id, client.url, index, generation, path)
        notes.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        saved.append(SavedImage(path, notes, generation))
    return saved

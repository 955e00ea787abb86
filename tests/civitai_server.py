"""CivitAI-API-shaped answers for tests: models, model versions, files with hashes, served by ``FileServer``."""

from __future__ import annotations

import json
from typing import Any

from tests.file_server import FileServer, sha256

API = "/api/v1"


def version(server: FileServer, version_id: int, body: bytes, **over: Any) -> dict[str, Any]:
    """A model version whose one primary file (``body``) is served at ``/files/<id>.safetensors``."""
    url = server.publish(f"files/{version_id}.safetensors", body)
    record: dict[str, Any] = {
        "id": version_id,
        "name": f"v{version_id}",
        "baseModel": "SD 1.5",
        "trainedWords": ["shiny", "glossy"],
        "files": [
            {"name": "a config.json", "type": "Config", "sizeKB": 1},
            {
                "name": f"adapter_{version_id}.safetensors",
                "type": "Model",
                "primary": True,
                "sizeKB": len(body) / 1024,
                "hashes": {"SHA256": sha256(body).upper(), "AutoV2": "ABCDEF0123"},
                "downloadUrl": url,
            },
        ],
        "downloadUrl": url,
    }
    record.update(over)
    return record


def model(
    model_id: int, name: str, versions: list[dict[str, Any]], kind: str = "LORA", nsfw: bool = False
) -> dict[str, Any]:
    return {"id": model_id, "name": name, "type": kind, "nsfw": nsfw, "modelVersions": versions}


def publish_model(server: FileServer, record: dict[str, Any]) -> None:
    """Serve ``/models/{id}`` and each ``/model-versions/{id}`` (with its ``model`` summary, as CivitAI does)."""
    server.publish(f"{API}/models/{record['id']}", json.dumps(record).encode())
    for item in record["modelVersions"]:
        summary = {"name": record["name"], "type": record["type"], "nsfw": record["nsfw"]}
        server.publish(
            f"{API}/model-versions/{item['id']}",
            json.dumps({**item, "modelId": record["id"], "model": summary}).encode(),
        )


def publish_search(server: FileServer, *records: dict[str, Any]) -> None:
    """What ``/models?query=…`` answers (whatever the query: tests publish what the search would find)."""
    server.publish(f"{API}/models", json.dumps({"items": list(records), "metadata": {}}).encode())

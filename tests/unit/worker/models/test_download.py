"""``fetch``: resumed downloads, MD5 and SHA-256 checks, disk budgets, locks shared by two workers, progress events."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from openhorde.worker.models import download as download_module
from openhorde.worker.models.catalogue import RemoteFile
from openhorde.worker.models.download import ChecksumMismatch, DiskBudgetExceeded, fetch, lock_path
from openhorde.worker.models.store import ModelStore
from tests.file_server import FileServer, serving, sha256

BODY = os.urandom(5 * 1024 * 1024 + 123)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as httpd:
        httpd.publish("model.safetensors", BODY)
        yield httpd


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module.time, "sleep", lambda _: None)


def remote(server: FileServer, **over: object) -> RemoteFile:
    values: dict[str, object] = {"path": "m/model.safetensors", "url": server.url("model.safetensors")}
    values.update(over)
    return RemoteFile(**values)  # type: ignore[arg-type]


def test_a_cut_off_download_resumes_where_it_stopped(tmp_path: Path, server: FileServer) -> None:
    server.cut_after["/model.safetensors"] = 2 * 1024 * 1024
    path = fetch(remote(server, sha256=sha256(BODY)), ModelStore(tmp_path), progress=False)
    assert path.read_bytes() == BODY
    # The second request asked only for the rest, and the file was checked as a whole.
    assert server.ranges == [None, f"bytes={2 * 1024 * 1024}-"]
    assert not path.with_name(path.name + ".partial").exists()


def test_a_partial_file_left_by_a_crash_is_resumed_on_the_next_start(tmp_path: Path, server: FileServer) -> None:
    partial = tmp_path / "m" / "model.safetensors.partial"
    partial.parent.mkdir()
    partial.write_bytes(BODY[:1000])
    path = fetch(remote(server, sha256=sha256(BODY)), ModelStore(tmp_path), progress=False)
    assert path.read_bytes() == BODY and server.ranges == ["bytes=1000-"]


def test_a_server_that_ignores_range_is_read_from_the_start(tmp_path: Path, server: FileServer) -> None:
    server.ignore_range = True
    partial = tmp_path / "m" / "model.safetensors.partial"
    partial.parent.mkdir()
    partial.write_bytes(b"garbage that is no prefix")
    assert fetch(remote(server, sha256=sha256(BODY)), ModelStore(tmp_path), progress=False).read_bytes() == BODY


def test_a_wrong_resumed_download_is_refused_and_discarded(tmp_path: Path, server: FileServer) -> None:
    partial = tmp_path / "m" / "model.safetensors.partial"
    partial.parent.mkdir()
    partial.write_bytes(b"x" * 1000)  # not the file's first bytes: the whole fails its hash
    with pytest.raises(ChecksumMismatch, match="discarded"):
        fetch(remote(server, sha256=sha256(BODY)), ModelStore(tmp_path), progress=False)
    assert not partial.exists() and not (tmp_path / "m" / "model.safetensors").exists()


def test_md5_is_checked_when_it_is_all_the_source_gives(tmp_path: Path, server: FileServer) -> None:
    md5 = hashlib.md5(BODY, usedforsecurity=False).hexdigest()
    with pytest.raises(ChecksumMismatch, match=r"MD5 is .* but 0{32} was expected"):
        fetch(remote(server, md5="0" * 32), ModelStore(tmp_path), progress=False)
    path = fetch(remote(server, md5=md5.upper()), ModelStore(tmp_path), progress=False)
    assert path.read_bytes() == BODY
    # A present file is checked against the MD5 too, from the sidecar the download wrote.
    with pytest.raises(ChecksumMismatch, match="MD5"):
        fetch(remote(server, md5="1" * 32), ModelStore(tmp_path), progress=False)


def test_a_download_over_the_budget_is_refused_before_any_byte(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / "other.safetensors").write_bytes(b"o" * 1024 * 1024)
    store = ModelStore(tmp_path, budget_bytes=5 * 1024 * 1024)
    # With the size known beforehand (the reference's), no request is made at all …
    with pytest.raises(DiskBudgetExceeded, match=r"holds 1\.0 MiB of its 5\.0 MiB budget"):
        fetch(remote(server, size=len(BODY)), store, progress=False)
    assert server.requests["/model.safetensors"] == 0
    # … without it, the server's Content-Length stops the download before the body is read.
    with pytest.raises(DiskBudgetExceeded, match="disk_budget_gb"):
        fetch(remote(server), store, progress=False)
    assert not list((tmp_path / "m").glob("model.safetensors*"))


def test_a_download_larger_than_the_free_disk_is_refused(tmp_path: Path, server: FileServer) -> None:
    store = ModelStore(tmp_path, reserve_bytes=1 << 60)  # no disk has this much free beyond its reserve
    with pytest.raises(DiskBudgetExceeded, match="free"):
        fetch(remote(server), store, progress=False)


def test_two_workers_sharing_a_store_download_once(tmp_path: Path, server: FileServer) -> None:
    server.delay_s = 0.3  # the first download is still running when the second worker asks
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(fetch(remote(server, sha256=sha256(BODY)), ModelStore(tmp_path), progress=False))
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "m" / "model.safetensors"] * 2
    assert server.requests["/model.safetensors"] == 1
    assert lock_path(ModelStore(tmp_path), results[0]).is_file()  # type: ignore[arg-type]


def test_progress_is_logged_as_events(tmp_path: Path, server: FileServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=download_module.__name__)
    fetch(remote(server), ModelStore(tmp_path), progress=False)
    events = [record for record in caplog.records if getattr(record, "event", None) == "download_progress"]
    percents = [record.percent for record in events]
    assert len(events) >= 5 and percents == sorted(percents) and percents[-1] == 100.0
    assert all(record.total == len(BODY) for record in events)
    done = [record for record in caplog.records if getattr(record, "event", None) == "download_done"]
    assert len(done) == 1 and done[0].bytes == len(BODY)


def _fetch_in_process(url: str, root: str, sha: str) -> str:
    """What one worker process does: fetch the file into the shared store (run in a spawned process)."""
    return str(fetch(RemoteFile("m/model.safetensors", url, sha), ModelStore(Path(root)), progress=False))


def test_two_worker_processes_sharing_a_store_download_once(tmp_path: Path, server: FileServer) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    server.delay_s = 1.0  # both processes are started and asking before the first answer comes
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        url = server.url("model.safetensors")
        futures = [pool.submit(_fetch_in_process, url, str(tmp_path), sha256(BODY)) for _ in range(2)]
        paths = [future.result(timeout=60) for future in futures]
    assert paths == [str(tmp_path / "m" / "model.safetensors")] * 2
    assert server.requests["/model.safetensors"] == 1
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == BODY

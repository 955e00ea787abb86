"""Files the horde keeps in its data directory are its owner's alone: directories 0700, files 0600.

Images, the database (and SQLite's WAL and shared-memory files, which SQLite creates with the database
file's permissions) and the server secret are private data; nothing else on the machine needs to read them.
Files are created with these modes from the start, not changed afterwards, so no moment exists in which
another account could open them.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a private directory; an existing one is made private too."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new or truncated file that only the owner may read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def make_private(path: Path) -> None:
    """Create ``path`` empty if missing, and give it owner-only permissions."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    path.chmod(PRIVATE_FILE_MODE)

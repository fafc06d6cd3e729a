"""Files the server creates for itself: owner-only, whatever the umask it was started with.

The SQLite session store holds every caller's conversations and the log file names callers;
outside the shipped systemd units (``UMask=0077``) a shell's umask 022 would leave both
readable by every local user. So a directory this server creates is 0700 and a file 0600.
Directories and files that already exist keep the modes their owner gave them.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each one created 0700."""
    missing: list[Path] = []
    here = directory
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by another process meanwhile: its mode is its creator's
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and 0600 (its parents 0700) unless it exists; True if created."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def open_private_append(path: Path) -> int:
    """A descriptor appending to ``path``, created 0600 (parents 0700) if it is new."""
    create_private_file(path)
    return os.open(path, os.O_WRONLY | os.O_APPEND)

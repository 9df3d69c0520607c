"""Output-path checks made before a command does any work.

A command that reads for minutes (a benchmark, a corpus analysis, a training data load) and then
finds that it cannot create its output folder loses that time, and Python's error for it (e.g.
``FileExistsError: 'out'`` for a file standing where a folder is needed) does not say what to do.
:func:`check_creatable` looks before anything is read or written: it creates nothing, so a
refused command leaves no trace.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import VfiError


def check_creatable(folder: str | os.PathLike, what: str) -> None:
    """Raise a one-line :class:`VfiError` unless ``folder`` exists as a writable folder or could
    be created: the nearest existing part of its path must be a folder this process can write.

    ``what`` names the output in the message (e.g. ``"--json"``, ``"the corpus"``).
    """
    folder = Path(folder)
    for part in [folder, *folder.parents]:
        if not part.exists():
            continue
        if not part.is_dir():
            raise VfiError(
                f"cannot write {what} under {folder}: {part} is a file, not a folder; "
                "choose another path"
            )
        if not os.access(part, os.W_OK | os.X_OK):
            raise VfiError(
                f"cannot write {what} under {folder}: no permission to write in {part}; "
                "choose another path"
            )
        return

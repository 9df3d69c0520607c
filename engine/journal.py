"""The work directory beside the output, and the journal that lets ``--resume`` continue a run.

While a run writes ``out.mp4`` everything goes into ``.out.mp4.vfi-work/`` in the same directory:
the encoded segments (or PNG frames), ``journal.json`` and finally the assembled file, which is then
renamed onto ``out.mp4`` (same file system: the rename is atomic, so the output is either absent or
complete). The journal lists the finished segments; it is rewritten atomically (temporary file,
fsync, rename) after each one, so even after ``kill -9`` it describes exactly the segments that are
complete on disk. A resumed run checks the fingerprint (input file and every setting that changes
the output), drops anything the journal does not list, and continues after the last segment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import VfiError

JOURNAL = "journal.json"
VERSION = 1


def work_dir_for(output: Path) -> Path:
    return output.parent / f".{output.name}.vfi-work"


def input_fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class Journal:
    dir: Path
    fingerprint: dict
    segments: list[dict] = field(default_factory=list)  # {"file", "first", "frames", "size"}

    @property
    def frames_done(self) -> int:
        return sum(s["frames"] for s in self.segments)

    def commit(self, file: Path, first: int, frames: int) -> None:
        """Record a finished segment (already fsynced and renamed into place)."""
        self.segments.append(
            {"file": file.name, "first": first, "frames": frames, "size": _size(file)}
        )
        self._write()

    def _write(self) -> None:
        data = {"version": VERSION, "fingerprint": self.fingerprint, "segments": self.segments}
        tmp = self.dir / (JOURNAL + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.dir / JOURNAL)
        fsync_dir(self.dir)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def open_work_dir(output: Path, fingerprint: dict, *, resume: bool, notice) -> Journal:
    """Create (or, with ``resume``, reopen) the work directory of ``output`` and its journal."""
    work = work_dir_for(output)
    if work.exists():
        journal = _load(work) if resume else None
        if journal is not None:
            if journal.fingerprint != fingerprint:
                changed = sorted(
                    k
                    for k in set(journal.fingerprint) | set(fingerprint)
                    if journal.fingerprint.get(k) != fingerprint.get(k)
                )
                raise VfiError(
                    f"cannot resume: the interrupted run used other settings or input "
                    f"({', '.join(changed)}); rerun with the same ones, or drop --resume to start over"
                )
            _drop_unlisted(journal)
            if journal.segments:
                notice(
                    f"resuming after {journal.frames_done} frames ({len(journal.segments)} segments)"
                )
            return journal
        if resume:
            notice("nothing to resume (no journal): starting from the beginning")
        else:
            notice(
                f"removing the leftovers of an interrupted run in {work.name} (--resume continues one)"
            )
        remove_work_dir(work)
    elif resume:
        notice("nothing to resume: starting from the beginning")
    try:
        work.mkdir(parents=False)
    except FileNotFoundError:
        raise VfiError(f"output directory {output.parent} does not exist") from None
    except PermissionError:
        raise VfiError(f"cannot write to {output.parent} (permission denied)") from None
    except OSError as e:
        raise VfiError(f"cannot write to {output.parent}: {e.strerror}") from None
    journal = Journal(work, fingerprint)
    journal._write()
    return journal


def _load(work: Path) -> Journal | None:
    try:
        data = json.loads((work / JOURNAL).read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != VERSION:
        return None
    return Journal(work, data.get("fingerprint", {}), list(data.get("segments", [])))


def _drop_unlisted(journal: Journal) -> None:
    """Keep the journal's segments that are intact; delete every other file of the work dir."""
    keep = []
    for seg in journal.segments:
        path = journal.dir / seg["file"]
        if not path.exists() or _size(path) != seg["size"]:
            break  # a segment is damaged: it and everything after it are redone
        keep.append(seg)
    journal.segments = keep
    listed = {s["file"] for s in keep} | {JOURNAL}
    for p in journal.dir.iterdir():
        if p.name not in listed:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    journal._write()


def _size(path: Path) -> int:
    """A segment's size: bytes of a video segment, number of frames of a PNG segment directory."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix == ".png")
    return path.stat().st_size


def remove_work_dir(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)

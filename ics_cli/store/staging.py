"""Output sets written whole or not at all.

An output set (the tables and figures of `ics compare`, the figures of `ics plot`, an export) is
written by `staged`: into a staging folder beside its destination, marked by an `.incomplete` file,
then moved into place, so a kill leaves the previous complete set or a folder marked incomplete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IcsError


INCOMPLETE = ".incomplete"

INCOMPLETE_NOTE = ("This folder is incomplete: `ics` was writing it and stopped before it finished. "
                   "Rerun the command that writes it.\n")


def staging_folder(dest: Path) -> Path:
    """Where an output set for `dest` is written before it moves into place: `.<name>.incomplete` beside it."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}{INCOMPLETE}"


def is_incomplete(folder: Path) -> bool:
    """Whether `folder` holds an output set that was never finished (it holds the INCOMPLETE marker)."""
    return os.path.lexists(Path(folder) / INCOMPLETE)


@contextmanager
def staging(dest: Path) -> Iterator[Path]:
    """A fresh staging folder for `dest` (`staging_folder(dest)`, marked by an INCOMPLETE file): one a
    killed writer left is replaced; when the block raises (an error, Ctrl-C) it is removed. Moving
    what it holds into `dest` is the caller's (`staged`: file by file; TensorBoard's export: a folder
    per run)."""
    stage = staging_folder(dest)
    if stage.is_symlink() or (stage.exists() and not is_incomplete(stage)):
        raise IcsError(f"'{stage}' is in the way: it is where the outputs for '{dest}' are staged, "
                       "and it is not a staging folder; move it away")
    if stage.exists():
        shutil.rmtree(stage)        # left by a killed run: never a complete set
    stage.mkdir(parents=True)
    (stage / INCOMPLETE).write_text(INCOMPLETE_NOTE)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@contextmanager
def staged(dest: Path, owned: Callable[[str], bool]) -> Iterator[Path]:
    """Write an output set into a staging folder next to `dest`, then move it into `dest`.

    Yields the staging folder (`staging_folder(dest)`, marked by an INCOMPLETE file). When the block
    ends, every file in it moves into `dest` (created if missing), and every other file of `dest` that
    `owned(name)` claims (a file of the previous set that the new one lacks) is removed; for those few
    renames `dest` holds the marker too. A subfolder of the set moves in file by file by the same rule
    (`_move_in`: `owned` hears its files as `<folder>/<name>`, the folder itself as `<folder>/`); a file
    where a subfolder goes stops it before anything moves. When the block raises (an error, Ctrl-C),
    the staging folder is removed and `dest` keeps its previous set; a hard kill leaves the marked
    staging folder, which the next call replaces. A `dest` that is itself a staging folder is written
    straight into.
    """
    dest = Path(dest)
    if dest.name.startswith(".") and dest.name.endswith(INCOMPLETE) and is_incomplete(dest):
        yield dest
        return
    with staging(dest) as stage:
        yield stage
    dest.mkdir(parents=True, exist_ok=True)
    blocked = _in_the_way(stage, dest)
    if blocked:                     # before anything moves: `dest` keeps its previous set
        shutil.rmtree(stage)
        raise IcsError(f"'{blocked}' is in the way: the outputs put a folder there, and it is not a "
                       "folder; move it away")
    (dest / INCOMPLETE).write_text(INCOMPLETE_NOTE)
    _move_in(stage, dest, owned)
    (dest / INCOMPLETE).unlink()
    shutil.rmtree(stage)


def _move_in(stage: Path, dest: Path, owned: Callable[[str], bool], prefix: str = "") -> None:
    """Move the files of `stage` into `dest`, each subfolder's into `dest`'s subfolder of that name (file
    by file: a user's own files in it stay); then remove what of `dest` the new set lacks and `owned`
    claims: a file `owned(prefix + name)` claims, and of a folder `owned(prefix + name + "/")` claims,
    the files it claims (and the folder, if that empties it)."""
    names = {p.name for p in stage.iterdir() if p.name != INCOMPLETE}
    for name in sorted(names):
        src, dst = stage / name, dest / name
        if not src.is_dir():
            os.replace(src, dst)
            continue
        dst.mkdir(exist_ok=True)
        _move_in(src, dst, owned, f"{prefix}{name}/")
    for old in sorted(dest.iterdir()):
        if old.name in names or old.name == INCOMPLETE:
            continue
        if not old.is_dir():
            if owned(prefix + old.name):
                old.unlink()
        elif not old.is_symlink() and owned(f"{prefix}{old.name}/"):
            _remove_owned(old, owned, f"{prefix}{old.name}/")


def _in_the_way(stage: Path, dest: Path) -> Path | None:
    """The first path of `dest` where a subfolder of `stage` goes and something other than a folder is."""
    for src in sorted(p for p in stage.iterdir() if p.is_dir()):
        dst = dest / src.name
        if os.path.lexists(dst) and (dst.is_symlink() or not dst.is_dir()):
            return dst
        found = _in_the_way(src, dst) if dst.is_dir() else None
        if found:
            return found
    return None


def _remove_owned(folder: Path, owned: Callable[[str], bool], prefix: str) -> None:
    """Remove the files of `folder` that `owned(prefix + name)` claims; then `folder` itself if empty."""
    for old in sorted(folder.iterdir()):
        if not old.is_dir() and owned(prefix + old.name):
            old.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()

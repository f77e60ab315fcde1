"""All-or-nothing export folders, for tools/export_biomedclip.py and tools/segmenter_export.py.

An exporter writes into a temp folder beside --out (`<out>.tmp-<pid>`). Only once every file is
written and every check has passed (the parity of the TorchScript file with the Python model) does
that folder take the place of --out. A failure on the way (a missing weights file, a failed check,
Ctrl-C) removes the temp folder and leaves --out exactly as it was: an existing export is never left
with some of a new export's files (a new tokenizer over the old clip.pt loaded and scored silently
differently).

Files of an existing --out that the export does not write (a user's notes, the checkpoint files of
`--checkpoint DIR --out DIR`) are moved into the new folder, not deleted.
"""

import contextlib
import os
import shutil
from pathlib import Path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """The files, then the folders: the rename that follows must not publish unwritten data."""
    for d, _dirs, files in os.walk(root, topdown=False):
        for f in files:
            _fsync(Path(d) / f)
        _fsync(Path(d))


def _replace(new: Path, out: Path) -> None:
    """`new` takes the place of `out` (a folder, or nothing); `out`'s own files move into it first."""
    if not os.path.lexists(out):
        os.rename(new, out)
        _fsync(out.parent)
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    carried: list[str] = []
    try:
        for name in sorted(os.listdir(out)):
            if not os.path.lexists(new / name):
                os.rename(out / name, new / name)
                carried.append(name)
        os.rename(out, old)
    except BaseException:
        for name in carried:
            os.rename(new / name, out / name)
        raise
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        for name in carried:
            os.rename(new / name, out / name)
        raise
    _fsync(out.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_export(out: Path):
    """Yields the folder to write the export into; it replaces `out` when the block succeeds."""
    # a symlinked --out keeps its link: the folder it points to is the one replaced
    out = Path(os.path.realpath(out))
    if os.path.lexists(out) and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

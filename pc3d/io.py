"""File I/O at the bottom of the stack: atomic writes and the one reader of cloud arrays.

Atomic writes: every artefact pc3d writes goes through a temp file and a rename. A crash or a
kill mid-write never leaves a truncated file under the final name, and a file that already
exists is only replaced once the new one is complete. The temp file is always in the target's
own folder (so the rename never crosses filesystems and never turns into a copy) and is named
``.<stem>.<pid>.<8 hex>.pc3d-tmp<suffix>`` (:data:`TEMP_NAME`): one left by a killed process is
recognised and removed by :func:`remove_stale_temp_files` (``pc3d-train`` does so at start).
:func:`atomic_open` is the durable variant (flush, fsync, rename, fsync the folder) that
checkpoints use.

Reading clouds: :func:`read_clouds` is the single reader of ``.npy`` / ``.npz`` clouds, used by
``pc3d-view``, ``pc3d-export`` (through :func:`pc3d.viz.io.load_clouds`, which adds the Open3D
formats) and ``pc3d-eval``, so that every command reads the same array of the same file. An
``.npz`` with several arrays is read by :data:`NPZ_KEYS` order (see there). A folder of clouds
is read by :func:`read_cloud_folder` (see there for what one is: the folder ``pc3d-generate``
writes is one).

Standard library and NumPy only, so that light modules (the data generator, its worker
processes) can use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

#: Marker in the name of every temp file of an atomic write: ``.<stem>.<pid>.<8 hex>.pc3d-tmp<suffix>``.
TEMP_MARK = "pc3d-tmp"
#: The name of a temp file of :func:`atomic_write` / :func:`atomic_open` (groups ``stem``, ``pid``, ``suffix``).
TEMP_NAME = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>\d+)\.[0-9a-f]{8}\."
                       + re.escape(TEMP_MARK) + r"(?P<suffix>\.[^.]*)?$")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temp path beside ``path``, same suffix, named by :data:`TEMP_NAME` (with this process' pid)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.{TEMP_MARK}{path.suffix}")


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync a folder, so that a rename or unlink in it survives a power loss (no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EPERM, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, fsync: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (same suffix), then rename it onto ``path``.

    The temporary file (named by :data:`TEMP_NAME`) is removed if ``write`` fails; ``fsync=True``
    flushes it to disk before the rename. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a temp file beside ``path`` for binary writing; on success make it ``path``, durably.

    Steps: write (the ``with`` body) -> flush -> fsync the file -> ``os.replace`` onto ``path``
    -> fsync the folder. The temp file is in ``path``'s own folder, so the rename is atomic on
    every local filesystem: ``path`` is either the old complete file or the new complete one,
    whatever kills the process or fills the disk. On any error (``KeyboardInterrupt`` and
    ``SystemExit`` too) the temp file is removed and ``path`` is untouched. A temp file left by
    a SIGKILL carries :data:`TEMP_NAME`; see :func:`remove_stale_temp_files`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_temp_files(directory: str | os.PathLike, *, own_pid_is_stale: bool = False) -> list[Path]:
    """The temp files of atomic writes in ``directory`` (not recursive) whose writing process is gone.

    A temp file whose pid is a live process is kept (it may be another job's write in progress),
    except this process' own when ``own_pid_is_stale`` (true at start-up, before this process
    wrote anything: the pid was reused). Sorted; ``[]`` when the folder does not exist.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for p in directory.iterdir():
        m = TEMP_NAME.match(p.name)
        if m is None or not p.is_file():
            continue
        pid = int(m["pid"])
        if pid == os.getpid():
            stale = own_pid_is_stale
        else:
            stale = not _pid_alive(pid)
        if stale:
            out.append(p)
    return sorted(out)


def remove_stale_temp_files(directory: str | os.PathLike, *, own_pid_is_stale: bool = False) -> list[Path]:
    """Remove :func:`stale_temp_files` of ``directory`` (left by killed writers); returns those removed."""
    removed = []
    for p in stale_temp_files(directory, own_pid_is_stale=own_pid_is_stale):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    if removed:
        fsync_dir(directory)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically (non-JSON values via ``str``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as ``.npy`` to ``path`` atomically (no pickles)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)

    return atomic_write(path, write)


#: The array read from an ``.npz`` that holds several arrays and no ``key`` is given: the first
#: of these names it holds. ``clouds`` (a generic set), then ``points`` (pc3d's batch key: inputs
#: and references), ``samples`` (generated clouds), ``recon`` / ``pred`` (model outputs), ``x``.
#: An ``.npz`` with a single array is read whatever its name.
NPZ_KEYS = ("clouds", "points", "samples", "recon", "pred", "x")


def check_clouds(array, where: str) -> np.ndarray:
    """Validate clouds read from ``where`` (a file name, for messages) and return them as float32 ``(B, N, 3)``.

    Shapes: ``(N, 3)`` (one cloud, returned as ``(1, N, 3)``) or ``(B, N, 3)``. Raises
    ``ValueError`` (the message starts with ``where``) for another shape, an empty cloud, a
    non-numeric dtype or NaN / infinite coordinates.
    """
    a = np.asarray(array)
    shape = tuple(a.shape)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{where}: expected a cloud of shape (N, 3) or clouds of shape (B, N, 3), "
                         f"got shape {shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{where}: the cloud is empty (shape {tuple(a.shape)})")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{where}: expected numbers, got dtype {a.dtype}")
    a = np.asarray(a, np.float32)
    bad = ~np.isfinite(a).all(-1)
    if bad.any():
        raise ValueError(f"{where}: {int(bad.sum())} points are NaN or infinite")
    return a


def read_clouds(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read the clouds of a ``.npy`` or ``.npz`` file (no pickles).

    Args:
        path: ``.npy`` holding ``(N, 3)`` or ``(B, N, 3)`` numbers, or ``.npz`` holding such arrays.
        key: the ``.npz`` array to read. Default: the only array, else the first of
            :data:`NPZ_KEYS` the file holds (an error when it holds none of them).

    Returns:
        float32 ``(B, N, 3)`` (a single cloud is ``(1, N, 3)``).

    Raises:
        FileNotFoundError: no such file. ValueError: another suffix, an unreadable file, no
        such key, a wrong shape, an empty cloud or NaN coordinates (the message starts with the path).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc.__class__.__name__}: {exc})") from exc
        return check_clouds(a, str(path))
    if suffix != ".npz":
        raise ValueError(f"{path}: expected a .npy or .npz file of clouds")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not a zip archive of arrays")
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc.__class__.__name__}: {exc})") from exc
    with z:
        keys = list(z.files)
        if key is None:
            if len(keys) == 1:
                key = keys[0]
            else:
                key = next((k for k in NPZ_KEYS if k in keys), None)
                if key is None:
                    raise ValueError(f"{path}: holds arrays {keys}; say which one with --key / key= "
                                     f"(default keys, in order: {', '.join(NPZ_KEYS)})")
        if key not in keys:
            raise ValueError(f"{path}: no array {key!r}; it holds {keys}")
        try:
            a = z[key]
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}[{key}]: not a readable array ({exc.__class__.__name__}: {exc})") from exc
    return check_clouds(a, f"{path}[{key}]")


def read_cloud_folder(path: str | os.PathLike) -> tuple[list[np.ndarray], list[Path]]:
    """Read a folder of clouds: the clouds and the files they came from.

    What a folder of clouds is: the ``.npy`` files under it (recursively, sorted by path; hidden
    files such as temp files of atomic writes are ignored), of two kinds:

    * per-cloud files, holding one ``(N, 3)`` cloud each (``pc3d-generate``'s ``npy/sample_NNNN.npy``);
    * stacked files, holding ``(B, N, 3)`` (``pc3d-generate``'s ``samples.npy``).

    When the folder has per-cloud files, they are its clouds, and stacked files beside them are
    the same clouds written once more (``samples.npy`` beside ``npy/``): they are not counted
    again, but they must hold as many clouds in all as there are per-cloud files (else
    ``ValueError``: the folder mixes different sets). Without per-cloud files, the clouds of the
    stacked files, in file order. Other files (``.ply``, ``.json`` ...) are not read here.

    Returns:
        ``(clouds, files)``: float32 ``(N_i, 3)`` arrays (point counts may differ) and the files read.

    Raises:
        FileNotFoundError: no such folder, or no ``.npy`` file in it. ValueError: a bad file (see
        :func:`read_clouds`), or stacked files that do not match the per-cloud files.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    files = sorted(f for f in path.rglob("*.npy")
                   if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts))
    if not files:
        raise FileNotFoundError(f"{path}: no .npy files (a folder of clouds holds (N, 3) or (B, N, 3) .npy files)")
    single, stacked = [], []
    for f in files:
        try:
            ndim = np.load(f, mmap_mode="r", allow_pickle=False).ndim
        except (ValueError, EOFError, OSError) as exc:
            raise ValueError(f"{f}: not a readable .npy array ({exc.__class__.__name__}: {exc})") from exc
        (stacked if ndim == 3 else single).append(f)
    if not single:
        clouds = [c for f in stacked for c in read_clouds(f)]
        return clouds, stacked
    clouds = [read_clouds(f)[0] for f in single]
    if stacked:
        n_stacked = sum(int(np.load(f, mmap_mode="r", allow_pickle=False).shape[0]) for f in stacked)
        if n_stacked != len(clouds):
            names = ", ".join(str(f.relative_to(path)) for f in stacked)
            raise ValueError(f"{path}: {len(clouds)} per-cloud (N, 3) files but the stacked (B, N, 3) file(s) "
                             f"{names} hold {n_stacked} clouds; a folder of clouds holds one set (point at one "
                             "file, or move the other set out)")
    return clouds, single

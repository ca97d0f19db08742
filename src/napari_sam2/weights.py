"""Download Meta's official SAM 2 / SAM 2.1 / EdgeTAM checkpoints once, into a per-user cache.

``fetch_checkpoint("sam2.1_hiera_tiny")`` returns the path of a verified ``.pt`` file.
The file is streamed into a temporary file in the cache directory, its size and checksum are
checked, and only then is it renamed (``os.replace``, atomic) to its final name. A file under
the final name therefore always passed verification, so later calls only compare its size and
never touch the network or re-hash ~900 MB.

Why not ``pooch.retrieve``: it does temp file + hash + move, but (1) its HTTP downloader calls
``progress.reset()`` and then ``update(total)`` at the end, which breaks the small
``total``/``update``/``close`` progress contract used here (and double-counts bytes); (2) a
truncated transfer, a refused connection and a 404 all surface as raw ``requests`` exceptions
or a generic hash error, so telling the user *what* failed would mean picking pooch's
internals apart anyway; (3) it has no size check. Streaming with ``requests`` (a pooch
dependency, so nothing new is installed) is a few dozen lines and keeps every failure under
:class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .errors import CheckpointError

__all__ = ["CHECKPOINTS", "Checkpoint", "CheckpointError", "cache_dir", "fetch_checkpoint", "git_blob_id"]

CACHE_ENV = "NAPARI_SAM2_CACHE"
BASE_URL_ENV = "NAPARI_SAM2_BASE_URL"
#: (connect, read) timeouts in seconds for each HTTP request / socket read.
TIMEOUT: tuple[float, float] = (15.0, 60.0)
_CHUNK = 1 << 20




@dataclass(frozen=True)
class Checkpoint:
    """One official checkpoint: download URL, size in bytes (``None`` if unknown) and its checksum.

    The checksum is the file's SHA-256, or, for a file Meta publishes inside a git repository,
    ``git_blob``: git's object id of the file (SHA-1 of ``b"blob <size>\\0" + content``), which
    names exactly one content and size -- what ``git ls-tree`` lists for that path at that commit.
    """

    url: str
    size: int | None
    sha256: str | None
    git_blob: str | None = None

    def __post_init__(self) -> None:
        if (self.sha256 is None) == (self.git_blob is None):
            raise ValueError("a checkpoint needs exactly one checksum: sha256 or git_blob")

    @property
    def filename(self) -> str:
        """The official file name, e.g. ``sam2.1_hiera_tiny.pt`` (last URL component)."""
        return self.url.rsplit("/", 1)[-1]


_META = "https://dl.fbaipublicfiles.com/segment_anything_2"
# The SHA-256 values are NOT published by Meta: they are the Git-LFS oids (sha256 of the exact
# file) of the same checkpoints on Hugging Face (official facebook/* repos and mirrors that agree).
# If Meta's file ever differs, the download fails with a checksum error that names both hashes
# and tells the user to download the file themselves and pass its path to ``load_model``.
CHECKPOINTS: dict[str, Checkpoint] = {
    "sam2.1_hiera_tiny": Checkpoint(f"{_META}/092824/sam2.1_hiera_tiny.pt", 156008466,
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
    "sam2.1_hiera_small": Checkpoint(f"{_META}/092824/sam2.1_hiera_small.pt", 184416285,
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
    "sam2.1_hiera_base_plus": Checkpoint(f"{_META}/092824/sam2.1_hiera_base_plus.pt", 323606802,
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
    "sam2.1_hiera_large": Checkpoint(f"{_META}/092824/sam2.1_hiera_large.pt", 898083611,
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
    "sam2_hiera_tiny": Checkpoint(f"{_META}/072824/sam2_hiera_tiny.pt", 155906050,
        "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125"),
    "sam2_hiera_small": Checkpoint(f"{_META}/072824/sam2_hiera_small.pt", None,  # size unknown
        "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3"),
    "sam2_hiera_base_plus": Checkpoint(f"{_META}/072824/sam2_hiera_base_plus.pt", 323493298,
        "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071"),
    "sam2_hiera_large": Checkpoint(f"{_META}/072824/sam2_hiera_large.pt", 897952466,
        "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b"),
    # EdgeTAM: Meta publishes edgetam.pt in the facebookresearch/EdgeTAM repository itself (a plain git
    # blob, not LFS; no SHA-256 is published). The URL is pinned to the commit whose tree lists the blob.
    "edgetam": Checkpoint(
        "https://github.com/facebookresearch/EdgeTAM/raw/9cc44bfe9e16cc374242917b91283c718410ea87/checkpoints/"
        "edgetam.pt", None, None, git_blob="abd54d22bbd22ba3e53cf59a307e59e0f3701be6"),
}


def git_blob_id(path: str | os.PathLike) -> str:
    """git's object id of the file at ``path`` (what ``git hash-object`` prints), hex."""
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Directory holding downloaded checkpoints: ``$NAPARI_SAM2_CACHE`` if set, else the
    platform's user cache dir for ``napari-sam2`` plus ``checkpoints``. Not created here."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-sam2", appauthor=False)) / "checkpoints"


def _make_progress(progress: Any, total: int | None, desc: str) -> Any:
    """``None`` -> a tqdm bar on stderr; ``False`` -> no bar; else the given tqdm-like object."""
    if progress is False:
        return None
    if progress is None:
        from tqdm import tqdm

        return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                    file=sys.stderr, leave=False)
    if total is not None:
        progress.total = total
    return progress


def fetch_checkpoint(name: str, *, progress: Any = None, base_url: str | None = None) -> Path:
    """Return the path of the verified checkpoint ``name`` in :func:`cache_dir`, downloading it
    once if needed.

    Args:
        name: An official name such as ``"sam2.1_hiera_large"`` (a trailing ``.pt`` is accepted).
        progress: ``None`` for a tqdm bar on stderr, ``False`` for none, or any object with a
            writable ``total`` and ``update(n)`` / ``close()`` methods (e.g. ``napari.utils.progress``).
            It is closed when the download ends.
        base_url: Mirror prefix replacing Meta's host and path (default ``$NAPARI_SAM2_BASE_URL``);
            the file is fetched from ``f"{base_url.rstrip('/')}/{filename}"``.

    Raises:
        CheckpointError: Unknown name, network/HTTP failure, interrupted transfer or wrong checksum.
            Nothing is ever left under the final name after a failure.
    """
    key = name[:-3] if name.endswith(".pt") else name
    if key not in CHECKPOINTS:
        raise CheckpointError(
            f"Unknown SAM 2 checkpoint {name!r}. Known names: {', '.join(CHECKPOINTS)}. "
            "To use another checkpoint file, pass its path instead of a name.")
    ckpt = CHECKPOINTS[key]
    folder = cache_dir()
    dest = folder / ckpt.filename
    if dest.is_file() and (ckpt.size is None or dest.stat().st_size == ckpt.size):
        return dest  # only ever created by the verified os.replace below

    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    url = f"{base_url.rstrip('/')}/{ckpt.filename}" if base_url else ckpt.url
    how_to = (f"You can download {url} on a machine with internet access and copy it to "
              f"{dest}, or pass the file's path to load_model, or set {BASE_URL_ENV} to a mirror "
              "that serves the same file names.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{ckpt.filename}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"Cannot write to the checkpoint cache {folder}: {exc}. Set "
                              f"{CACHE_ENV} to a writable directory, or pass a file path.") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got, digest, expected = _download(url, out, ckpt, progress, how_to)
        if expected is not None and got != expected:
            raise CheckpointError(
                f"Download of {url} was interrupted: got {got} of {expected} bytes. The partial "
                f"file was discarded; try again. {how_to}")
        kind, expected_id, got_id = (("SHA-256", ckpt.sha256, digest) if ckpt.sha256 is not None
                                     else ("git object id", ckpt.git_blob or "", git_blob_id(tmp)))
        if got_id != expected_id.lower():
            raise CheckpointError(
                f"Checksum mismatch for {ckpt.filename} downloaded from {url}: expected {kind} "
                f"{expected_id}, got {got_id}. The file was discarded. If you trust this source, "
                f"download the file yourself and pass its path to load_model. {how_to}")
        os.replace(tmp, dest)
    except OSError as exc:
        raise CheckpointError(f"Could not save {ckpt.filename} into {folder}: {exc}. Free some "
                              f"space or set {CACHE_ENV} to another directory.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _download(url: str, out: Any, ckpt: Checkpoint, progress: Any,
              how_to: str) -> tuple[int, str, int | None]:
    """Stream ``url`` into the open binary file ``out``.

    Returns ``(bytes received, sha256 hex digest, expected byte count or None)``; the expected
    count is the registry size, else the server's Content-Length. Raises :class:`CheckpointError`.
    """
    try:
        response = requests.get(url, stream=True, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise CheckpointError(f"The SAM 2 model could not be downloaded from {url} "
                              f"({type(exc).__name__}: {exc}). {how_to}") from exc
    with response:
        if response.status_code != 200:
            raise CheckpointError(f"The SAM 2 model could not be downloaded from {url}: HTTP "
                                  f"{response.status_code} {response.reason}. {how_to}")
        length = response.headers.get("Content-Length", "")
        expected = ckpt.size if ckpt.size is not None else (int(length) if length.isdigit() else None)
        bar = _make_progress(progress, expected, ckpt.filename)
        hasher = hashlib.sha256()
        got = 0
        try:
            for chunk in response.iter_content(chunk_size=_CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                got += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        except requests.RequestException as exc:
            total = f"{expected}" if expected is not None else "an unknown number of"
            raise CheckpointError(
                f"Download of {url} was interrupted ({type(exc).__name__}): got {got} of {total} "
                f"bytes. The partial file was discarded; try again. {how_to}") from exc
        finally:
            if bar is not None:
                bar.close()
    return got, hasher.hexdigest(), expected

"""Download MovieLens archives from GroupLens, check their sha256 and extract them safely.

The datasets' licence allows research use but not redistribution: download them yourself with
:func:`download_movielens` and keep them out of version control.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from attnrec.errors import DataError

GROUPLENS_BASE = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class MovieLensArchive:
    """A published MovieLens zip: file name, size in bytes and sha256 (checksums as listed by TFDS)."""

    name: str
    size: int
    sha256: str

    @property
    def url(self) -> str:
        return f"{GROUPLENS_BASE}{self.name}.zip"


MOVIELENS: dict[str, MovieLensArchive] = {
    a.name: a
    for a in (
        MovieLensArchive("ml-100k", 4924029, "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
        MovieLensArchive("ml-1m", 5917549, "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
        MovieLensArchive("ml-20m", 198702078, "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
        MovieLensArchive("ml-25m", 261978986, "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
        MovieLensArchive("ml-latest-small", 978202, "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
    )
}
"""Known archives by dataset name."""

_CHUNK = 1 << 20


def download_movielens(
    name: str,
    dest: str | Path,
    url: str | None = None,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download and extract a MovieLens dataset; returns the extracted folder ``dest / name``.

    Nothing is downloaded when ``dest / name`` already exists. The archive is streamed to a temporary file in
    ``dest``, its sha256 is checked, and it is extracted to a temporary folder that is renamed into place only
    when everything succeeded, so a failure leaves ``dest`` as it was.

    Args:
        name: a key of :data:`MOVIELENS` (``"ml-100k"``, ``"ml-1m"``, ...).
        dest: parent folder (created if needed).
        url: download address (default: the GroupLens address of ``name``; any ``http(s)://`` or ``file://``
            mirror works).
        sha256: expected checksum of the zip (default: the published checksum of ``name``).
        timeout: socket timeout in seconds.

    Raises:
        DataError: unknown name, network failure, checksum mismatch, or an archive that is not a zip, has
            unsafe member paths, or does not hold the ``name/`` folder.
    """
    archive = MOVIELENS.get(name)
    if archive is None:
        raise DataError(f"unknown MovieLens dataset {name!r} (expected one of: {', '.join(MOVIELENS)})")
    expected = (sha256 or archive.sha256).lower()
    source = url or archive.url
    dest = Path(dest)
    target = dest / name
    if target.exists():
        return target
    dest.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=dest) as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        digest = _fetch(source, zip_path, timeout)
        if digest != expected:
            raise DataError(
                f"{source}: sha256 of the download is {digest}, expected {expected} (corrupt or different file)"
            )
        out = Path(tmp) / "extract"
        _extract(zip_path, out, source)
        extracted = out / name
        if not extracted.is_dir():
            found = sorted(p.name for p in out.iterdir())
            raise DataError(f"{source}: archive does not contain the folder {name + '/'!r} (found: {found})")
        extracted.rename(target)
    return target


def _fetch(url: str, path: Path, timeout: float) -> str:
    """Stream ``url`` into ``path``; return the sha256 hex digest."""
    if not url.startswith(("http://", "https://", "file://")):
        raise DataError(f"url must start with http://, https:// or file://; got {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "attnrec"})
    hasher = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, path.open("wb") as out:
            while chunk := response.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: download failed with HTTP status {exc.code} ({exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: download failed ({reason})") from None
    return hasher.hexdigest()


def _extract(zip_path: Path, out: Path, source: str) -> None:
    """Extract a zip refusing absolute paths, ``..`` components and links outside ``out``."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            for info in members:
                member = PurePosixPath(info.filename)
                if member.is_absolute() or ".." in member.parts or (member.parts and ":" in member.parts[0]):
                    raise DataError(f"{source}: archive member {info.filename!r} has an unsafe path")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"{source}: archive member {info.filename!r} is a symbolic link")
            out.mkdir(parents=True)
            for info in members:
                target = out.joinpath(*PurePosixPath(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{source}: not a valid zip archive ({exc})") from None

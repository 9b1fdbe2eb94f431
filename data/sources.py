"""Dataset sources: a local path, or a URL whose sha256 is checked before anything is used."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from gnnrec.common.atomic_files import OUTPUT_MARKER, atomic_path, staged_folder
from gnnrec.data.errors import DataError

DEFAULT_CACHE = Path(os.environ.get("GNNREC_CACHE", Path.home() / ".cache" / "gnnrec"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_source(
    source: str | Path, sha256: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A local path for ``source``.

    A local path is returned as it is. A URL needs ``sha256``: it is downloaded to a temporary
    name, verified, renamed into ``cache_dir`` and (for a ``.zip``) extracted beside it; a second
    call finds the verified copy and downloads nothing.
    """
    text = str(source)
    if "://" not in text:
        path = Path(text)
        if not path.exists():
            raise DataError("no such file or folder", path)
        return path
    if not sha256:
        raise DataError(
            "a URL source needs its sha256 (data.sha256) so the download can be verified", text
        )
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.request.url2pathname(text.rsplit("/", 1)[-1])).name or "download"
    target = cache / f"{sha256[:16]}-{name}"
    if not target.exists():
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(text) as response:
                shutil.copyfileobj(response, out)
            actual = sha256_of(tmp)
            if actual != sha256.lower():
                raise DataError(f"sha256 mismatch: expected {sha256}, downloaded {actual}", text)
    if target.suffix != ".zip":
        return target
    extracted = target.with_suffix("")
    if not extracted.exists():
        with (
            staged_folder(extracted, "extracted download") as tmp_dir,
            zipfile.ZipFile(target) as archive,
        ):
            archive.extractall(tmp_dir)
    entries = [p for p in extracted.iterdir() if p.name != OUTPUT_MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else extracted

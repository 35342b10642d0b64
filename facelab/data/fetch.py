"""Download the public datasets into the data root: ``facelab data fetch lfw``.

The addresses and SHA-256 checksums are configuration (``facelab/data/sources.yaml``), not
code. Downloads go through `pooch <https://www.fatiando.org/pooch/>`_ (hash verification,
temporary file moved into place only once verified) with a downloader that resumes a
partial file with an HTTP ``Range`` request and shows a progress bar
(:func:`facelab.core.progress.tqdm`). The dataset folder appears under the data root only after
every file is downloaded and verified (it is assembled in a staging folder beside it and
then renamed), so an interrupted or corrupted download never leaves a half-written dataset
in place; the partial file waits in ``<data root>/.facelab-downloads/`` for the next try.

Datasets that cannot be downloaded without a licence form get their "how to request it"
text from the same file (:func:`how_to_get`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from facelab.core.progress import tqdm
from facelab.data.datasets import dataset_spec

__all__ = ["DataSource", "RemoteFile", "FetchError", "SourcesError", "NotFetchableError",
           "load_sources", "how_to_get", "fetch_dataset", "sources_file", "DOWNLOADS_DIR",
           "MARKER"]

SOURCES_FILE = Path(__file__).with_name("sources.yaml")
SOURCES_ENV = "FACELAB_DATA_SOURCES"
DOWNLOADS_DIR = ".facelab-downloads"
MARKER = ".facelab-fetched.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXTRACT = (None, "tar")


class SourcesError(ValueError):
    """The data sources file is malformed (the message names the file and the entry)."""


class FetchError(RuntimeError):
    """A download failed, was partial, or did not match its checksum."""


class NotFetchableError(LookupError):
    """The dataset cannot be downloaded automatically (its message says how to get it)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name in the dataset folder, SHA-256, addresses (mirrors of
    the same bytes, tried in order) and whether it is an archive to unpack."""

    name: str
    sha256: str
    urls: tuple[str, ...]
    extract: str | None = None
    creates: str | None = None
    what: str = ""


@dataclass(frozen=True)
class DataSource:
    """Where one dataset comes from."""

    name: str
    folder: str
    title: str = ""
    licence: str = ""
    files: tuple[RemoteFile, ...] = ()
    how: str = ""

    @property
    def fetchable(self) -> bool:
        return bool(self.files)


def sources_file(path: str | os.PathLike | None = None) -> Path:
    """The sources file in use: ``path``, else ``$FACELAB_DATA_SOURCES``, else the one
    shipped in the package.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A sources file given by the user (``--sources``).

    Returns
    -------
    pathlib.Path
    """
    value = path or os.environ.get(SOURCES_ENV)
    return Path(value).expanduser() if value else SOURCES_FILE


def load_sources(path: str | os.PathLike | None = None) -> dict[str, DataSource]:
    """Read and check the data sources file (see :func:`sources_file`).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The sources file (default: :func:`sources_file`).

    Returns
    -------
    dict of str to DataSource
        One entry per dataset name.

    Raises
    ------
    SourcesError
        Naming the file and the entry, when an entry is not a mapping, a file lacks a name,
        a 64-hex-digit ``sha256`` or an http(s) address, or ``extract`` is unknown.
    """
    where = sources_file(path)
    try:
        raw = yaml.safe_load(where.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SourcesError(f"{where}: cannot be read ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise SourcesError(f"{where}: expected a mapping of dataset name to its source")
    out = {}
    for name, entry in raw.items():
        key = f"{where}: {name}"
        if not isinstance(entry, Mapping):
            raise SourcesError(f"{key}: expected a mapping, got {type(entry).__name__}")
        files = []
        for i, f in enumerate(entry.get("files") or []):
            fk = f"{key}.files[{i}]"
            if not isinstance(f, Mapping):
                raise SourcesError(f"{fk}: expected a mapping")
            fname = str(f.get("name") or "")
            if not fname or "/" in fname or "\\" in fname or fname.startswith("."):
                raise SourcesError(f"{fk}.name: a plain file name is required, got {fname!r}")
            sha = str(f.get("sha256") or "").lower()
            if not _SHA256.match(sha):
                raise SourcesError(f"{fk}.sha256: 64 hexadecimal digits required, got {sha!r}")
            urls = f.get("urls")
            if isinstance(urls, str):
                urls = [urls]
            if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                                   for u in urls):
                raise SourcesError(f"{fk}.urls: one or more http(s) addresses required")
            extract = f.get("extract")
            if extract not in _EXTRACT:
                raise SourcesError(f"{fk}.extract: one of {_EXTRACT}, got {extract!r}")
            files.append(RemoteFile(name=fname, sha256=sha, urls=tuple(urls), extract=extract,
                                    creates=f.get("creates"), what=str(f.get("what") or "")))
        out[str(name)] = DataSource(name=str(name), folder=str(entry.get("folder") or name),
                                    title=str(entry.get("title") or ""),
                                    licence=str(entry.get("licence") or ""),
                                    files=tuple(files), how=str(entry.get("how") or ""))
    return out


def how_to_get(name: str, sources: Mapping[str, DataSource] | None = None) -> str:
    """One line saying how to get dataset ``name``: the fetch command when it can be
    downloaded, else where and how to request it.

    Parameters
    ----------
    name : str
        A dataset name.
    sources : mapping of str to DataSource, optional
        The sources (default: :func:`load_sources`).

    Returns
    -------
    str
        ``facelab data fetch NAME``, or the request procedure and address, or
        ``"see data/README.md"``.
    """
    sources = load_sources() if sources is None else sources
    src = sources.get(name)
    if src is not None and src.fetchable:
        return f"facelab data fetch {name}"
    try:
        where = dataset_spec(name).source
    except ValueError:
        where = ""
    how = src.how if src is not None else ""
    text = "; ".join(t for t in (how, where) if t)
    return text or "see data/README.md"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class IncompleteDownloadError(OSError):
    """The server sent fewer bytes than it announced."""


class ResumableDownloader:
    """A pooch downloader that appends to ``part`` with an HTTP ``Range`` request when a
    previous try left a partial file there, and shows a progress bar.

    The bytes go to ``part`` first; only a complete transfer is moved to the file pooch
    asked for (pooch then verifies the hash and moves it into place, or deletes it).
    """

    def __init__(self, part: Path, *, desc: str, progress: bool = True, timeout: float = 60,
                 chunk_size: int = 1 << 14):
        self.part = Path(part)
        self.desc = desc
        self.progress = progress
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.resumed_from = 0

    def __call__(self, url: str, output_file: str, pooch, check_only: bool = False):
        import requests

        if check_only:
            return requests.head(url, timeout=self.timeout, allow_redirects=True).ok
        start = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as resp:
            if start and resp.status_code == 416:  # nothing left to send: start again
                self.part.unlink()
                return self(url, output_file, pooch)
            resp.raise_for_status()
            if start and resp.status_code == 206:
                total = _content_range_total(resp.headers.get("Content-Range"))
                mode = "ab"
            else:  # the server ignored the range: the whole file comes again
                start, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            self.resumed_from = start
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True,
                       unit_divisor=1024, desc=self.desc, disable=not self.progress)
            try:
                with open(self.part, mode) as fh:
                    for chunk in resp.iter_content(chunk_size=self.chunk_size):
                        fh.write(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()
        size = self.part.stat().st_size
        if total is not None and size != total:
            raise IncompleteDownloadError(f"received {size:,} of {total:,} bytes")
        os.replace(self.part, output_file)
        return None


def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes \d+-\d+/(\d+)", value or "")
    return int(m.group(1)) if m else None


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs "Downloading file ..." at INFO; facelab prints its own lines."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _download(f: RemoteFile, downloads: Path, *, progress: bool, timeout: float,
              say: Callable[[str], None]) -> Path:
    """Download ``f`` into ``downloads`` from the first address that works; returns the
    verified file. Raises :class:`FetchError` listing what went wrong at each address."""
    import pooch
    import requests

    dest = downloads / f.name
    if dest.exists() and _sha256(dest) == f.sha256:
        say(f"{f.name}: already downloaded and verified")
        return dest
    part = downloads / (f.name + ".part")
    errors = []
    for url in f.urls:
        loader = ResumableDownloader(part, desc=f.name, progress=progress, timeout=timeout)
        try:
            with _quiet_pooch():
                pooch.retrieve(url, known_hash=f"sha256:{f.sha256}", fname=f.name,
                               path=downloads, downloader=loader)
        except ValueError as exc:  # pooch: the hash does not match (its temp file is gone)
            resumed = (" after resuming an earlier partial file (now deleted: the next try "
                       "starts afresh)" if loader.resumed_from else "")
            errors.append(f"{url}: the file does not match its SHA-256 checksum "
                          f"({_short_hash_message(exc)}){resumed}")
            continue
        except (requests.RequestException, OSError) as exc:
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        resumed = f" (resumed at {loader.resumed_from:,} bytes)" if loader.resumed_from else ""
        say(f"{f.name}: downloaded from {url}{resumed}, SHA-256 verified")
        return dest
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = (f"\nThe partial download ({part.stat().st_size:,} bytes) is kept in {part}; "
                "run the same command again to resume it.")
    raise FetchError(f"{f.name} could not be downloaded and verified:\n  "
                     + "\n  ".join(errors) + kept + "\nNothing was installed.")


def _short_hash_message(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"expected (\S+), got (\S+?)\.", text)
    return f"expected {m.group(1)}, got {m.group(2)}" if m else text


def _extract_tar(archive: Path, into: Path) -> list[str]:
    """Unpack with the stdlib's ``data`` filter (no absolute paths, no ``..``, no links
    out of the folder, no device files); returns the top-level names it created."""
    with tarfile.open(archive) as tar:
        names = {m.name.split("/", 1)[0] for m in tar.getmembers() if m.name}
        tar.extractall(into, filter="data")
    return sorted(names)


def _complete(target: Path, src: DataSource) -> bool:
    marker = target / MARKER
    if not marker.is_file():
        return False
    try:
        done = json.loads(marker.read_text()).get("files", {})
    except (OSError, ValueError):
        return False
    return all(done.get(f.name) == f.sha256 for f in src.files)


def _present(target: Path, f: RemoteFile) -> bool:
    """Whether ``target`` already holds what ``f`` would bring (never overwritten)."""
    if f.extract:
        return bool(f.creates) and (target / f.creates).exists()
    return (target / f.name).exists()


def fetch_dataset(name: str, root: str | os.PathLike | None = None, *,
                  sources: str | os.PathLike | Mapping[str, DataSource] | None = None,
                  progress: bool = True, timeout: float = 60,
                  say: Callable[[str], None] = print) -> Path:
    """Download dataset ``name`` into ``<root>/<folder>`` with verified checksums.

    Parameters
    ----------
    name
        A dataset listed in the sources file with ``files`` (``"lfw"``).
    root
        The data root (created if missing); default ``$FACELAB_DATA``.
    sources
        A sources file path or an already loaded mapping (default: :func:`load_sources`).
    progress
        Show a progress bar per file (:func:`facelab.core.progress.tqdm`).
    timeout
        Seconds to wait for a server to answer.
    say
        Where progress sentences go (``print`` by default).

    Returns
    -------
    pathlib.Path
        The dataset folder.

    Raises
    ------
    NotFetchableError
        The dataset needs a request or licence form; the message says where and how.
    FetchError
        A file could not be downloaded from any address, was partial, or did not match its
        SHA-256. Nothing is installed then; a partial file stays in
        ``<root>/.facelab-downloads/`` and the next call resumes it.
    """
    srcs = sources if isinstance(sources, Mapping) else load_sources(sources)
    src = srcs.get(name)
    if src is None or not src.fetchable:
        raise NotFetchableError(f"{name} cannot be downloaded automatically: "
                                f"{how_to_get(name, srcs)}")
    value = root if root is not None else os.environ.get("FACELAB_DATA")
    if not value:
        raise FetchError("no data root: set FACELAB_DATA (or pass --root) to the folder the "
                         "datasets go into")
    base = Path(value).expanduser().resolve()
    base.mkdir(parents=True, exist_ok=True)
    target = base / src.folder
    if _complete(target, src):
        say(f"{name}: already in {target} (every file verified when it was fetched)")
        return target
    wanted = [f for f in src.files if not (target.exists() and _present(target, f))]
    for f in src.files:
        if f not in wanted:
            say(f"{f.name}: {target} already has it; kept as it is")
    if not wanted:  # a folder the user filled by hand: nothing to add, nothing written
        say(f"{name}: {target} already holds every file; nothing downloaded")
        return target
    downloads = base / DOWNLOADS_DIR / name
    downloads.mkdir(parents=True, exist_ok=True)
    got = {f.name: _download(f, downloads, progress=progress, timeout=timeout, say=say)
           for f in wanted}
    stage = Path(tempfile.mkdtemp(prefix=f".{src.folder}-incoming-", dir=base))
    try:
        for f in wanted:
            if f.extract == "tar":
                say(f"{f.name}: unpacking")
                _extract_tar(got[f.name], stage)
            else:
                shutil.copy2(got[f.name], stage / f.name)
        (stage / MARKER).write_text(json.dumps({
            "dataset": name, "fetched": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "files": {f.name: f.sha256 for f in src.files},
            "urls": {f.name: list(f.urls) for f in src.files}}, indent=2))
        if not target.exists():
            os.replace(stage, target)  # the whole dataset appears at once
        else:
            for item in sorted(stage.iterdir()):
                if item.name == MARKER or not (target / item.name).exists():
                    os.replace(item, target / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)
    with contextlib.suppress(OSError):
        (base / DOWNLOADS_DIR).rmdir()
    say(f"{name}: installed in {target}")
    if src.licence:
        say(f"terms: {src.licence}")
    return target

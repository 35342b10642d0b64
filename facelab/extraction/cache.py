"""A content-addressed, crash-safe, on-disk cache of per-image results.

Each entry is one ``.npz`` file (NumPy arrays, read with ``allow_pickle=False``; never
pickle) named by a key: the SHA-256 of a JSON description of what was computed (the
image bytes' hash, the model name, its weights' checksums and its parameters; see
:func:`make_key`). Entries are written to a temporary file in the same folder and then
renamed with :func:`os.replace`, so a reader sees either the complete entry or none:
a run killed half-way leaves only whole entries, and a rerun resumes where it stopped.
An entry that fails to read (truncated, bit-flipped: zip CRC errors, or a key that does
not match its name) is counted as corrupt, deleted and recomputed by the caller.

Layout: ``<root>/<key[:2]>/<key>.npz``; default root ``facelab.core.config.cache_dir()/features``.

:class:`ColumnarCache` keeps the same entries under the same keys in Parquet segments
(``<root>/columnar/``) for fast warm reads, and still reads the npz entries; it is what
:func:`facelab.extraction.pipeline.extract` uses by default.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facelab.core.config import cache_dir

__all__ = ["FeatureCache", "ColumnarCache", "make_key", "KEY_VERSION"]

#: Bumped when the meaning of cached records changes, which invalidates old entries.
KEY_VERSION = 1
_KEY_FIELD = "__key__"



def make_key(**parts: Any) -> str:
    """Cache key: SHA-256 of the canonical JSON of ``parts`` plus :data:`KEY_VERSION`.

    Canonical: keys sorted, no whitespace, values JSON cannot encode written with
    :func:`str`.

    Parameters
    ----------
    **parts
        What the entry was computed from (image hash, model name, weights' checksums,
        options).

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    text = json.dumps({"v": KEY_VERSION, **parts}, sort_keys=True, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    """Read and write cache entries (dicts of NumPy arrays) by key.

    Parameters
    ----------
    root
        The cache folder (default ``facelab.core.config.cache_dir()/features``; ``~`` is
        expanded).

    Attributes
    ----------
    hits, misses, corrupt, writes
        Counters since the object was created.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None:
            root = cache_dir() / "features"
        self.root = Path(root).expanduser()
        self.hits = self.misses = self.corrupt = self.writes = 0

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives.

        Parameters
        ----------
        key
            A key from :func:`make_key`.

        Returns
        -------
        pathlib.Path
            ``<root>/<key[:2]>/<key>.npz`` (whether or not it exists).
        """
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or ``None`` when absent or corrupt (a corrupt file is removed).

        Parameters
        ----------
        key
            A key from :func:`make_key`.

        Returns
        -------
        dict of str to numpy.ndarray, or None
            The arrays stored by :meth:`put`; ``None`` counts a miss, or a corrupt entry
            (unreadable, or whose stored key differs from its name), which is deleted.
        """
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
                zipfile.LargeZipFile):
            return self._corrupt(path)
        stored = arrays.pop(_KEY_FIELD, None)
        if stored is None or str(stored) != key:
            return self._corrupt(path)
        self.hits += 1
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write an entry atomically (temporary file + :func:`os.replace`).

        Parameters
        ----------
        key
            A key from :func:`make_key`.
        arrays
            ``{name: array}`` to store (plain arrays; read back without pickle).

        Returns
        -------
        pathlib.Path
            The entry's file.
        """
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **{_KEY_FIELD: np.array(key)}, **dict(arrays))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1
        return path

    def keys(self) -> list[str]:
        """Keys of every complete entry on disk.

        Returns
        -------
        list of str
            Sorted keys.
        """
        return sorted(p.stem for p in self.root.glob("*/*.npz"))

    def remove_temp(self) -> int:
        """Delete temporary files left by killed runs.

        Returns
        -------
        int
            How many were removed.
        """
        n = 0
        for p in self.root.glob("*/.*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def _corrupt(self, path: Path) -> None:
        self.corrupt += 1
        path.unlink(missing_ok=True)
        return None

    def stats(self) -> dict[str, int]:
        """Counters as a dict.

        Returns
        -------
        dict of str to int
            ``hits``, ``misses``, ``corrupt`` and ``writes`` since creation.
        """
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt,
                "writes": self.writes}


# --------------------------------------------------------------------------- columnar

_SCHEMA_FIELDS = ("key", "names", "dtypes", "shapes", "data")


def _schema():
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("names", pa.list_(pa.string())),
                      ("dtypes", pa.list_(pa.string())),
                      ("shapes", pa.list_(pa.list_(pa.int64()))),
                      ("data", pa.list_(pa.binary()))])


#: ``{segment folder: {segment file name: its keys}}``, shared by the cache objects of a
#: process: segments are immutable and their names unique (time, pid, random part), so the
#: keys of a segment are read from disk once per process, not once per ``extract`` call
#: (notebook 01 makes 30 calls; re-reading every segment's keys each time cost seconds).
_SEGMENT_KEYS: dict[str, dict[str, list[str]]] = {}


class ColumnarCache:
    """The feature cache as Parquet segments: one row per entry, read many at a time.

    Same keys (:func:`make_key`) and the same entries (dicts of NumPy arrays, never
    pickle) as :class:`FeatureCache`, laid out for warm reads: entries are buffered and
    written as immutable Parquet segments ``<root>/columnar/seg-*.parquet`` (columns
    ``key``, ``names``, ``dtypes``, ``shapes``, ``data``; each array is its raw bytes plus
    dtype and shape, rebuilt with :func:`numpy.frombuffer`). :meth:`get_many` reads every
    segment holding a wanted key once (pyarrow) instead of opening one ``.npz`` per image
    and stage.

    Safety: a segment is written to a temporary file and renamed (:func:`os.replace`), so a
    reader sees whole segments or none; :meth:`flush` (the pipeline calls it after every
    batch) bounds what a kill can lose to the unflushed buffer, which a rerun recomputes.
    Segment names carry the writer's pid and a random part, so two processes writing at
    once never overwrite each other (the same key written twice holds the same content:
    keys are content hashes). :meth:`compact` merges segments under an exclusive
    ``fcntl`` lock and deletes the merged files only after the merged segment is in place.
    A segment that fails to read is counted in ``corrupt`` and removed.

    Old ``.npz`` entries under the same root (:class:`FeatureCache`'s layout) stay
    readable: a key not found in the segments is looked up there (``legacy_hits``), and
    :meth:`migrate` copies them into segments.

    Parameters
    ----------
    root
        The cache folder (default ``facelab.core.config.cache_dir()/features``, shared with
        :class:`FeatureCache`'s npz entries).
    flush_every
        :meth:`put` flushes by itself once this many entries are buffered.
    """

    def __init__(self, root: str | os.PathLike | None = None, flush_every: int = 256):
        if root is None:
            root = cache_dir() / "features"
        self.root = Path(root).expanduser()
        self.dir = self.root / "columnar"
        self.flush_every = int(flush_every)
        self.legacy = FeatureCache(self.root)
        self.hits = self.misses = self.corrupt = self.writes = self.legacy_hits = 0
        self._buffer: dict[str, dict[str, np.ndarray]] = {}
        self._index: dict[str, tuple[str, int]] = {}
        self._seen: set[str] = set()
        self._tables: dict[str, Any] = {}
        #: segments this object wrote (``extract`` merges a run's segments at its end)
        self.written: list[Path] = []

    # -- index --------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """The complete segment files on disk, oldest first.

        Returns
        -------
        list of pathlib.Path
            ``<root>/columnar/seg-*.parquet`` sorted by name (names start with the write
            time in nanoseconds).
        """
        return sorted(self.dir.glob("seg-*.parquet"))

    def _refresh(self) -> None:
        import pyarrow.parquet as pq

        paths = self.segments()
        memo = _SEGMENT_KEYS.setdefault(str(self.dir), {})
        for gone in set(memo) - {p.name for p in paths}:
            del memo[gone]
        for path in paths:
            name = path.name
            if name in self._seen:
                continue
            keys = memo.get(name)
            if keys is None:
                try:
                    keys = pq.read_table(path, columns=["key"]).column("key").to_pylist()
                except FileNotFoundError:
                    continue  # merged away by a concurrent compact()
                except Exception:  # noqa: BLE001 - any unreadable segment is corrupt
                    self._drop_corrupt(path)
                    continue
                memo[name] = keys
            self._seen.add(name)
            for row, key in enumerate(keys):
                self._index.setdefault(key, (name, row))

    def _drop_corrupt(self, path: Path) -> None:
        _SEGMENT_KEYS.get(str(self.dir), {}).pop(path.name, None)
        self.corrupt += 1
        self._seen.discard(path.name)
        self._tables.pop(path.name, None)
        path.unlink(missing_ok=True)

    def _table(self, name: str):
        """A segment as a ``pyarrow.Table`` (rows are converted to Python one at a time,
        when read: converting a large compacted segment whole took seconds per run)."""
        import pyarrow.parquet as pq

        if name not in self._tables:
            self._tables[name] = pq.read_table(self.dir / name)
        return self._tables[name]

    @staticmethod
    def _cell(table: Any, column: str, row: int) -> Any:
        """One value of a segment held as a ``pyarrow.Table`` or as a ``to_pydict()``."""
        if isinstance(table, dict):
            return table[column][row]
        return table.column(column)[row].as_py()

    @classmethod
    def _decode(cls, table: Any, row: int) -> dict[str, np.ndarray]:
        out = {}
        cells = [cls._cell(table, c, row) for c in ("names", "dtypes", "shapes", "data")]
        for name, dtype, shape, data in zip(*cells, strict=True):
            dt, shape = np.dtype(dtype), tuple(shape or ())
            out[name] = (np.frombuffer(data, dtype=dt).reshape(shape).copy() if dt.itemsize
                         else np.zeros(shape, dt))
        return out

    # -- reading --------------------------------------------------------------------
    def _read_segments(self, keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
        """Entries of ``keys`` found in segments, read in bulk: the wanted rows of each
        segment are taken with one ``Table.take`` and converted to Python once (converting
        cell by cell cost most of a warm read). Keys in the write buffer, keys not indexed
        and segments that fail to read are left to :meth:`get_many`'s one-by-one path."""
        rows_by_segment: dict[str, list[tuple[str, int]]] = {}
        for key in dict.fromkeys(keys):
            loc = self._index.get(key)
            if loc is not None and key not in self._buffer:
                rows_by_segment.setdefault(loc[0], []).append((key, loc[1]))
        found: dict[str, dict[str, np.ndarray]] = {}
        for name, wanted in rows_by_segment.items():
            try:
                table = self._table(name)
                if isinstance(table, dict):
                    continue
                part = table.take([row for _, row in wanted]).to_pydict()
            except Exception:  # noqa: BLE001 - the one-by-one path handles and counts it
                continue
            for i, (key, _) in enumerate(wanted):
                if part["key"][i] != key:
                    continue
                found[key] = self._decode(part, i)
                self.hits += 1
        return found

    def get_many(self, keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
        """The entries of ``keys`` that are cached.

        Parameters
        ----------
        keys
            Keys from :func:`make_key`.

        Returns
        -------
        dict of str to dict of str to numpy.ndarray
            ``{key: entry}`` for every key found (buffered, in segments, or in legacy npz);
            absent keys are left out and counted in ``misses``. An unreadable segment is
            counted in ``corrupt`` and removed.
        """
        self._refresh()
        found: dict[str, dict[str, np.ndarray]] = self._read_segments(keys)
        for key in keys:
            if key in found:
                continue
            if key in self._buffer:
                found[key] = self._buffer[key]
                self.hits += 1
                continue
            loc = self._index.get(key)
            if loc is not None:
                try:
                    table = self._table(loc[0])
                except FileNotFoundError:  # compacted meanwhile: re-index and retry once
                    self._reset()
                    self._refresh()
                    loc = self._index.get(key)
                    table = self._table(loc[0]) if loc else None
                except Exception:  # noqa: BLE001
                    self._drop_corrupt(self.dir / loc[0])
                    self._reset()
                    self._refresh()
                    table = None
                if (table is not None and loc is not None
                        and self._cell(table, "key", loc[1]) == key):
                    found[key] = self._decode(table, loc[1])
                    self.hits += 1
                    continue
            rec = self.legacy.get(key)
            self.corrupt += self.legacy.corrupt
            self.legacy.corrupt = 0
            if rec is not None:
                found[key] = rec
                self.legacy_hits += 1
                self.hits += 1
            else:
                self.misses += 1
        self.legacy.hits = self.legacy.misses = 0
        return found

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """One entry, or ``None`` (see :meth:`get_many`).

        Parameters
        ----------
        key
            A key from :func:`make_key`.

        Returns
        -------
        dict of str to numpy.ndarray, or None
            The entry's arrays, or ``None`` when it is not cached.
        """
        return self.get_many([key]).get(key)

    def __contains__(self, key: str) -> bool:
        self._refresh()
        return key in self._buffer or key in self._index or key in self.legacy

    def keys(self) -> list[str]:
        """Keys of every entry on disk (segments and legacy npz) and in the buffer.

        Returns
        -------
        list of str
            Sorted, without duplicates.
        """
        self._refresh()
        return sorted(set(self._index) | set(self._buffer) | set(self.legacy.keys()))

    def _reset(self) -> None:
        self._index.clear()
        self._seen.clear()
        self._tables.clear()

    # -- writing --------------------------------------------------------------------
    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Buffer an entry; written by the next :meth:`flush` (automatic every
        ``flush_every`` entries).

        Parameters
        ----------
        key
            A key from :func:`make_key`.
        arrays
            ``{name: array}`` to store; object arrays are refused when the segment is
            written (:class:`TypeError` from :meth:`flush`).
        """
        self._buffer[key] = {k: np.asarray(v) for k, v in arrays.items()}
        self.writes += 1
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def _write_segment(self, entries: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
        import uuid

        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, list] = {f: [] for f in _SCHEMA_FIELDS}
        for key, arrays in entries.items():
            cols["key"].append(key)
            arrs = [np.asarray(a) for a in arrays.values()]  # tobytes() is C order
            for a in arrs:
                if a.dtype.hasobject:
                    raise TypeError(f"cache entries hold plain arrays, not objects ({key})")
            cols["names"].append(list(arrays))
            cols["dtypes"].append([a.dtype.str for a in arrs])
            cols["shapes"].append([list(a.shape) for a in arrs])
            cols["data"].append([a.tobytes() for a in arrs])
        table = pa.table(cols, schema=_schema())
        self.dir.mkdir(parents=True, exist_ok=True)
        import time

        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=".seg-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.dir / name

    def flush(self) -> Path | None:
        """Write the buffered entries as one new segment (atomic).

        Returns
        -------
        pathlib.Path or None
            The new segment (also appended to :attr:`written`), or ``None`` when the
            buffer was empty.
        """
        if not self._buffer:
            return None
        path = self._write_segment(self._buffer)
        self._buffer = {}
        self.written.append(path)
        return path

    def compact(self, min_segments: int = 2, wait: bool = True,
                segments: list[Path] | None = None) -> int:
        """Merge every segment (or only ``segments``) into one, duplicate keys dropped.

        The buffer is flushed first; merging holds an exclusive ``fcntl`` lock on
        ``<root>/columnar/.compact.lock`` and deletes the merged files only after the
        merged segment is in place.

        Parameters
        ----------
        min_segments
            Merge only when at least this many segments are selected.
        wait
            Wait for another process's compaction to end; ``False``: give up at once.
        segments
            Only these segment files (e.g. :attr:`written`); default all.

        Returns
        -------
        int
            How many segments were merged: 0 when fewer than ``min_segments``, or when
            another process holds the lock and ``wait`` is False.
        """
        import fcntl

        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".compact.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return 0
            segs = self.segments()
            if segments is not None:
                wanted = {Path(p).name for p in segments}
                segs = [p for p in segs if p.name in wanted]
            if len(segs) < min_segments:
                return 0
            tables = []
            for p in segs:
                try:
                    tables.append(pq.read_table(p))
                except FileNotFoundError:
                    continue
                except Exception:  # noqa: BLE001
                    self._drop_corrupt(p)
            merged = pa.concat_tables(tables).to_pydict() if tables else None
            if merged:
                keep = {}
                for row, key in enumerate(merged["key"]):
                    keep.setdefault(key, row)
                entries = {k: self._decode(merged, r) for k, r in keep.items()}
                self._write_segment(entries)
            for p in segs:
                p.unlink(missing_ok=True)
        merged_names = {p.name for p in segs}
        self.written = [p for p in self.written if p.name not in merged_names]
        self._reset()
        return len(segs)

    def migrate(self, remove: bool = False) -> int:
        """Copy every legacy ``.npz`` entry not already in a segment into one new segment.

        Parameters
        ----------
        remove
            Then delete every legacy npz file (including those already in segments).

        Returns
        -------
        int
            How many entries were copied.
        """
        self._refresh()
        n = 0
        for key in self.legacy.keys():
            if key in self._index or key in self._buffer:
                continue
            rec = self.legacy.get(key)
            if rec is not None:
                self._buffer[key] = rec
                n += 1
        self.flush()
        if remove:
            for key in self.legacy.keys():
                self.legacy.path(key).unlink(missing_ok=True)
        return n

    def remove_temp(self) -> int:
        """Delete temporary files left by killed runs (segments and legacy entries).

        Returns
        -------
        int
            How many were removed.
        """
        n = self.legacy.remove_temp()
        for p in self.dir.glob(".seg-*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def stats(self) -> dict[str, int]:
        """Counters as a dict.

        Returns
        -------
        dict of str to int
            ``hits``, ``misses``, ``corrupt``, ``writes`` and ``legacy_hits`` since
            creation.
        """
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt,
                "writes": self.writes, "legacy_hits": self.legacy_hits}

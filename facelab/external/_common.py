"""Pieces every importer shares: the declared score scale, reading delimited text with
line numbers, JSON access with paths, and resolving image ids against a manifest."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.validation import Drops, InputError, check_in_range, check_numeric

__all__ = ["ScoreScale", "read_table", "JsonDoc", "IdResolver", "json_files", "to_bool"]

DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class ScoreScale:
    """How an external system's comparison scores read.

    Parameters
    ----------
    direction
        ``"higher"``: higher = more alike (a similarity); ``"lower"``: lower = more alike
        (a distance). facelab declares a match when ``similarity >= threshold``; a
        distance ``d`` becomes the similarity ``-d`` so that ``d <= t`` is the same
        decision as ``-d >= -t``.
    low, high
        The documented range; a score outside it is bad input (``-inf``/``inf`` for
        unbounded).
    name
        What the number is, for reports (``"Rekognition Similarity (percent)"``).
    """

    direction: str = "higher"
    low: float = -math.inf
    high: float = math.inf
    name: str = "score"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"score direction must be one of {DIRECTIONS}; got "
                             f"{self.direction!r}")
        if not self.low < self.high:
            raise ValueError(f"score range must have low < high; got [{self.low}, {self.high}]")

    @classmethod
    def parse(cls, spec: Any) -> ScoreScale:
        """A :class:`ScoreScale`, a mapping ``{direction, low, high, name}`` (or
        ``range: [low, high]``), or None (higher = more alike, unbounded)."""
        if spec is None:
            return cls()
        if isinstance(spec, ScoreScale):
            return spec
        if isinstance(spec, str):
            return cls(direction=spec)
        if isinstance(spec, Mapping):
            d = dict(spec)
            if "range" in d:
                d["low"], d["high"] = d.pop("range")
            unknown = set(d) - {"direction", "low", "high", "name"}
            if unknown:
                raise ValueError(f"unknown score scale keys {sorted(unknown)}")
            for k in ("low", "high"):
                if k in d and d[k] is not None:
                    d[k] = float(d[k])
                elif k in d:
                    d.pop(k)
            return cls(**d)
        raise TypeError(f"cannot read a score scale from {spec!r}")

    def to_similarity(self, scores: Any) -> np.ndarray:
        """Scores in facelab's convention (higher = more alike)."""
        s = np.asarray(scores, dtype=float)
        return s if self.direction == "higher" else -s

    def from_similarity(self, value: float) -> float:
        """A threshold in facelab's convention back on this scale."""
        return float(value) if self.direction == "higher" else -float(value)

    def describe(self, threshold: float | None = None) -> str:
        """``"Rekognition Similarity (percent) >= 80 (higher = more alike, range 0-100)"``."""
        rng = "" if math.isinf(self.low) and math.isinf(self.high) else \
            f", range {self.low:g} to {self.high:g}"
        more = "higher" if self.direction == "higher" else "lower"
        head = self.name
        if threshold is not None:
            op = ">=" if self.direction == "higher" else "<="
            head = f"{self.name} {op} {self.from_similarity(threshold):g}"
        return f"{head} ({more} = more alike{rng})"

    def check(self, values: np.ndarray, *, source: str, wheres, errors: str = "raise",
              drops: Drops | None = None, column: str = "score", mask=None) -> np.ndarray:
        """Keep mask of values inside the declared range (see
        :func:`facelab.core.validation.check_in_range`)."""
        return check_in_range(values, self.low, self.high, source=source, column=column,
                              wheres=wheres, errors=errors, drops=drops,
                              documented=f"declared for {self.name}", mask=mask)

    def to_dict(self) -> dict:
        return {"direction": self.direction, "low": self.low, "high": self.high,
                "name": self.name}


def read_table(path: str | os.PathLike, *, sep: str = ",", comment: str | None = None,
               names: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A delimited text file as strings, with the line number of every row.

    Blank lines (and, with ``comment``, lines starting with it) are skipped but counted,
    so ``wheres[i]`` is ``"line N"`` of the file as an editor shows it. ``names`` reads a
    file without a header line; ``sep=None`` splits on runs of whitespace.

    Raises
    ------
    InputError
        File missing, or a row with the wrong number of fields (named by line).
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "file not found")
    rows, lines = [], []
    header = names
    with path.open(newline="", encoding="utf-8-sig") as fh:
        if sep is None:
            it = ((i, line.split()) for i, line in enumerate(fh, start=1))
        else:
            reader = csv.reader(fh, delimiter=sep)
            it = ((reader.line_num, r) for r in reader)
        for lineno, fields in it:
            if not fields or all(not f.strip() for f in fields):
                continue
            if comment and fields[0].lstrip().startswith(comment):
                continue
            fields = [f.strip() for f in fields]
            if header is None:
                header = fields
                continue
            if len(fields) != len(header):
                raise InputError(str(path), f"{len(fields)} fields where the "
                                 f"{'header' if names is None else 'format'} has "
                                 f"{len(header)} ({', '.join(header)})", f"line {lineno}")
            rows.append(fields)
            lines.append(f"line {lineno}")
    if header is None:
        raise InputError(str(path), "the file is empty")
    return pd.DataFrame(rows, columns=header, dtype=object), lines


def to_bool(values: Iterable[Any], *, source: str, column: str, wheres) -> np.ndarray:
    """``1/0``, ``true/false``, ``yes/no``, ``genuine/impostor``, ``mated/non-mated`` as
    bool; anything else is an :class:`InputError` naming its line."""
    yes = {"1", "true", "t", "yes", "y", "genuine", "mated", "same"}
    no = {"0", "false", "f", "no", "n", "impostor", "non-mated", "nonmated", "different"}
    out = []
    for v, w in zip(values, wheres, strict=True):
        key = str(v).strip().lower()
        if isinstance(v, bool | np.bool_):
            out.append(bool(v))
        elif key in yes:
            out.append(True)
        elif key in no:
            out.append(False)
        else:
            raise InputError(source, f"{column} {v!r} is not a yes/no value "
                                     "(1/0, true/false, genuine/impostor)", w)
    return np.array(out, dtype=bool)


class JsonDoc:
    """A parsed JSON document and typed access that names the file and JSON path on error.

    ``doc.get(obj, "Similarity", path="FaceMatches[0]", kind="number")``
    """

    def __init__(self, source: str | os.PathLike | Mapping | list, name: str | None = None):
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            self.name = name or str(path)
            if not path.is_file():
                raise InputError(self.name, "file not found")
            try:
                self.data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(self.name, f"not valid JSON ({exc.msg})",
                                 f"line {exc.lineno}") from None
        else:
            self.name = name or "<object>"
            self.data = source

    def get(self, obj: Any, key: str, *, path: str, kind: str = "any",
            required: bool = True, low: float = -math.inf, high: float = math.inf,
            default: Any = None) -> Any:
        """``obj[key]`` checked: ``kind`` is ``"number"`` (finite, within
        ``[low, high]``), ``"string"``, ``"list"``, ``"object"`` or ``"any"``."""
        here = f"{path}.{key}" if path else key
        if not isinstance(obj, Mapping):
            raise InputError(self.name, f"expected an object, got {type(obj).__name__}",
                             path or "top level")
        if key not in obj or obj[key] is None:
            if required:
                raise InputError(self.name, f"missing field {key!r}", path or "top level")
            return default
        v = obj[key]
        if kind == "number":
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise InputError(self.name, f"{v!r} is not a number", here)
            if not math.isfinite(v):
                raise InputError(self.name, f"{v!r} is not finite", here)
            if not low <= v <= high:
                raise InputError(self.name, f"{v:g} is outside the documented range "
                                            f"[{low:g}, {high:g}]", here)
            return float(v)
        checks = {"string": str, "list": list, "object": Mapping}
        if kind in checks and not isinstance(v, checks[kind]):
            raise InputError(self.name, f"expected {kind}, got {type(v).__name__}", here)
        return v


def json_files(source: str | os.PathLike | Mapping | Iterable, *, suffix: str = ".json"
               ) -> list[tuple[str, Any]]:
    """``(id, document)`` pairs from a folder of JSON files (id = path relative to the
    folder without ``.json``), a mapping ``{id: path or parsed dict}``, or a list of
    paths (id = file name without ``.json``). Sorted by id."""
    if isinstance(source, Mapping):
        items = list(source.items())
    elif isinstance(source, str | os.PathLike):
        folder = Path(source)
        if not folder.is_dir():
            raise InputError(str(folder), "folder not found")
        items = [(p.relative_to(folder).as_posix()[:-len(suffix)], p)
                 for p in folder.rglob(f"*{suffix}")]
        if not items:
            raise InputError(str(folder), f"no *{suffix} files in the folder")
    else:
        items = [(Path(p).name[:-len(suffix)] if str(p).endswith(suffix) else Path(p).stem, p)
                 for p in source]
    ids = [i for i, _ in items]
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise InputError(str(source)[:200], f"two documents share the id {dup!r}")
    return sorted(items, key=lambda kv: str(kv[0]))


@dataclass
class IdResolver:
    """Maps the ids an external system used for images to the rows of a manifest.

    An id matches, in this order: the manifest index (``"celeba:img_celeba/000001.jpg"``),
    the same with ``/`` written ``:`` (Rekognition's ``ExternalImageId`` allows no ``/``),
    ``<dataset>/<file>``, the absolute ``path``, the ``file`` relative to the dataset
    root, and the file's base name; the last two only when they are unique in the
    manifest. ``target`` gives what an id resolves *to* (default: the index; for 1:N
    galleries the ``gallery_id``).
    """

    manifest: pd.DataFrame
    target: str | None = None
    _map: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        m = self.manifest
        idx = m.index.astype(str).tolist()
        out = m[self.target].astype(str).tolist() if self.target else idx
        maps: dict[str, str] = {}
        ambiguous: set[str] = set()

        def add(key: str, value: str, unique_only: bool) -> None:
            if not key:
                return
            if key in maps and maps[key] != value:
                if unique_only:
                    ambiguous.add(key)
                return
            maps.setdefault(key, value)

        for i, o in zip(idx, out, strict=True):
            add(i, o, False)
            add(i.replace("/", ":"), o, False)
            if self.target:
                add(o, o, False)
                add(o.replace("/", ":"), o, False)
        strong = dict(maps)
        for col, unique_only in (("path", False), ("file", True)):
            if col in m.columns:
                for v, o in zip(m[col].astype("string").fillna(""), out, strict=True):
                    add(str(v), o, unique_only)
        if "dataset" in m.columns and "file" in m.columns:
            for d, f, o in zip(m["dataset"].astype(str), m["file"].astype(str), out,
                               strict=True):
                add(f"{d}/{f}", o, False)
        if "file" in m.columns:
            for f, o in zip(m["file"].astype("string").fillna(""), out, strict=True):
                add(os.path.basename(str(f)), o, True)
        for k in ambiguous:
            if k not in strong:
                maps.pop(k, None)
        self._map = maps

    def __call__(self, ids: Iterable[Any]) -> list[str | None]:
        return [self._map.get(str(i)) for i in ids]

    def known(self) -> set[str]:
        return set(self._map)


def numbers(frame: pd.DataFrame, column: str, *, source: str, wheres, errors: str,
            drops: Drops) -> tuple[np.ndarray, np.ndarray]:
    """Shortcut for :func:`facelab.core.validation.check_numeric` on a column."""
    return check_numeric(frame[column].tolist(), source=source, column=column, wheres=wheres,
                         errors=errors, drops=drops)

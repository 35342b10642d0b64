"""numpydoc docstrings on the public API (issue 11).

Every public function, class and method of the checked floors (names in a module's
``__all__``, else names not starting with ``_`` defined in that module) has a docstring
with a Parameters section naming each parameter it takes (numpydoc's ``PR01``/``PR02``),
a Returns section when it returns a value (``RT01``), and a Raises section when its body
raises an exception (checked here with :mod:`ast`; numpydoc does not check it).
The validator is ``numpydoc.validate`` (installed without Sphinx, which only its Sphinx
extension needs).

The floors not yet brought up to this standard are listed in :data:`KNOWN_GAPS`: that list
may only shrink.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
from dataclasses import is_dataclass
from types import FunctionType

import numpydoc.validate as numpydoc_validate
import pytest

import facelab

#: Packages and modules whose public API is checked (minus :data:`KNOWN_GAPS`).
CHECKED = ["facelab.api", "facelab.cli", "facelab.core", "facelab.data", "facelab.external",
           "facelab.extraction", "facelab.face", "facelab.match", "facelab.metrics",
           "facelab.models", "facelab.perturb", "facelab.train",
           "facelab.report.audits", "facelab.report.datastatus", "facelab.report.record",
           "facelab.report.runner",
           "facelab.report.runs_index", "facelab.report.uptodate", "facelab.viz"]

#: Modules of facelab not yet checked (a known gap: it may shrink, never grow; the test
#: counts the modules it covers).
#: They have not been documented to this standard yet.
KNOWN_GAPS = [
    "facelab.studies",
]

#: Public modules inside :data:`KNOWN_GAPS` when this was last lowered.
UNCHECKED_MODULES = 12

#: numpydoc codes enforced: no docstring, undocumented / unknown parameters, no Returns.
CODES = {"GL08", "PR01", "PR02", "RT01"}


def _modules(prefix: str) -> list[str]:
    mod = importlib.import_module(prefix)
    names = [prefix]
    if hasattr(mod, "__path__"):
        names += [m.name for m in pkgutil.walk_packages(mod.__path__, prefix + ".")
                  if not m.name.rsplit(".", 1)[1].startswith("_")]  # private modules
    return names


def _public(module_name: str) -> list[tuple[str, object]]:
    """``(qualified name, object)`` of the module's public functions, classes and methods."""
    mod = importlib.import_module(module_name)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(mod, n, None)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module_name:
            continue  # re-exported: checked where it is defined
        out.append((f"{module_name}.{n}", obj))
        if inspect.isclass(obj):
            for m, attr in vars(obj).items():
                fn = attr.__func__ if isinstance(attr, classmethod | staticmethod) else attr
                if not m.startswith("_") and isinstance(fn, FunctionType):
                    out.append((f"{module_name}.{n}.{m}", fn))
    return out


def _raises(obj: object) -> bool:
    """Does the function's own body (not nested functions) raise an exception?"""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return False
    func = tree.body[0]

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                          | ast.ClassDef):
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                name = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if getattr(name, "id", None) != "NotImplementedError":
                    yield child
            yield from walk(child)

    return any(True for _ in walk(func))


def problems(module_name: str) -> list[str]:
    out = []
    for qual, obj in _public(module_name):
        if inspect.isclass(obj) and (is_dataclass(obj) or issubclass(obj, tuple)
                                     or issubclass(obj, BaseException)
                                     or getattr(obj, "_is_protocol", False)
                                     or "__init__" not in vars(obj)):
            # fields are documented as Attributes; exceptions take a message; a Protocol
            # or a class without its own constructor takes no parameters of its own
            codes = {"GL08"}
        else:
            codes = CODES
        result = numpydoc_validate.validate(qual)
        out += [f"{qual}: {code} {msg}" for code, msg in result["errors"] if code in codes]
        if inspect.isfunction(obj) and _raises(obj):
            doc = inspect.getdoc(obj) or ""
            if "\nRaises\n------" not in f"\n{doc}":
                out.append(f"{qual}: raises but has no Raises section")
    return out


def _gap(name: str) -> bool:
    return any(name == g or name.startswith(g + ".") for g in KNOWN_GAPS)


def test_known_gaps_are_real_modules_and_shrink():
    for name in KNOWN_GAPS:
        importlib.import_module(name)
    unchecked = [m for m in _modules("facelab") if _gap(m)]
    assert len(unchecked) <= UNCHECKED_MODULES, (
        f"{len(unchecked)} public modules are unchecked; the gap may only shrink (lower "
        f"UNCHECKED_MODULES to {len(unchecked)} when it does)")
    floors = {m.name for m in pkgutil.iter_modules(facelab.__path__)} - {"__main__"}
    covered = {n.split(".")[1] for n in CHECKED + KNOWN_GAPS}
    assert floors <= covered, f"floors neither checked nor listed as a gap: {floors - covered}"


@pytest.mark.parametrize("module_name",
                         [m for c in CHECKED for m in _modules(c) if not _gap(m)])
def test_public_api_has_numpydoc_sections(module_name):
    found = problems(module_name)
    assert not found, "\n" + "\n".join(found)

"""The catalogue of audit notebooks: what each one is (:class:`AuditSpec`), the order
they must run in, where the notebooks are, and the defaults of their parameters cells.

The runner (:mod:`facelab.report.runner`), the data status (:mod:`.datastatus`) and the
runs page (:mod:`.runs_index`) all read this module; it imports none of them.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.types import APPEARANCE_NOTE

#: Audits that produce something others use run first when several are run together
#: (06 trains the expression model that 04 compares with the fer model; 02 embeds the
#: faces 03 searches, and 06 is the longest cold run).
RUN_FIRST: tuple[str, ...] = ("06_train_expression", "02_verification_demographics")


@dataclass(frozen=True)
class AuditSpec:
    """One audit notebook and the fixed text of its model card.

    The card sections follow "Model Cards for Model Reporting" (Mitchell et al. 2019).

    Attributes
    ----------
    name : str
        Notebook stem, e.g. ``"02_verification_demographics"``.
    title : str
        Human-readable title.
    intended_use : str
        What the audit is for.
    factors : str
        The groups and conditions results are broken down by.
    evaluation_data : str
        The datasets it evaluates on.
    ethical : tuple of str
        Ethical considerations (e.g. the appearance note for expression and gender).
    caveats : tuple of str
        Caveats and recommendations.
    headline_metrics : tuple of str
        ``metrics.json`` keys shown on the runs index when a run has no findings table.
    suite_parameters : mapping of str to Any
        Parameters the full suite passes to the notebook (e.g. ``limit=None``).
    """

    name: str
    title: str
    intended_use: str
    factors: str
    evaluation_data: str
    ethical: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    headline_metrics: tuple[str, ...] = ()
    suite_parameters: Mapping[str, Any] = field(default_factory=dict)


_RESEARCH = ("Research datasets with research-only terms; labels (race, gender, expression) "
             "were assigned by dataset creators or annotators and are coarse, contested "
             "categories.")


AUDITS: dict[str, AuditSpec] = {s.name: s for s in [
    AuditSpec(
        "00_tour", "facelab tour (detection, analysis, verification, search)",
        "A guided first look at one photo: not an evaluation.",
        "None: a single image.", "scikit-image's astronaut photo and a few shared-data faces.",
        ethical=(APPEARANCE_NOTE,), headline_metrics=("n_faces", "verification")),
    AuditSpec(
        "01_detection_reliability", "Face detectors: failure to acquire by group",
        "Comparing face detectors' failure-to-acquire rates across demographic groups and "
        "image degradations before deployment.",
        "Race x gender as labelled in FairFace, UTKFace and CFD; image degradations.",
        "FairFace val, UTKFace, CFD (shared data; see data/README.md).",
        ethical=(_RESEARCH,),
        caveats=("Failure to acquire on curated face crops understates in-the-wild rates.",),
        headline_metrics=("fta_overall", "fta_disparity"),
        suite_parameters={"limit": None, "slow_limit": 600, "degradation_limit": 600,
                          "degradation_slow_limit": 120, "min_count": 30}),
    AuditSpec(
        "02_verification_demographics", "1:1 verification: demographic differentials",
        "Measuring false match and false non-match rates by group at one global threshold "
        "(NIST FRVT Part 3 style).",
        "Groups from dataset labels; impostor pairs within and across groups; genuine pairs "
        "by group where a dataset has identities and labels.",
        "CelebA identities (genuine and impostor pairs), CFD and FairFace (impostor pairs), "
        "LFW (genuine and impostor pairs by gender and by race).",
        ethical=(_RESEARCH, "A single global threshold yields different error rates per "
                 "group; the operator chooses who bears the errors."),
        caveats=("FairFace and CFD have one image per person: only impostor (FMR) analysis "
                 "is possible there.",
                 "LFW is news photos of public figures; its gender lists and MICA race "
                 "labels are third-party annotations, and most race cells are small.",),
        headline_metrics=("threshold", "fmr_by_group", "fnmr_overall",
                          "fnmr_by_group_identity", "nist_comparison"),
        suite_parameters={"limit": None}),
    AuditSpec(
        "03_one_to_many_search", "1:N search: false matches at permissive and strict "
        "thresholds (the ACLU test, rebuilt)",
        "Estimating how often a gallery search returns an innocent person and who those "
        "people are, at permissive and strict operating points.",
        "Gallery size, threshold, demographic group of probes and false candidates.",
        "Galleries and probes built from the shared data (see the notebook).",
        ethical=(_RESEARCH, "False matches in 1:N search can direct suspicion at innocent "
                 "people; human review is not a guarantee."),
        headline_metrics=("operating_points", "fpir_by_gallery_size"),
        suite_parameters={"limit": None, "n_probes": 2000}),
    AuditSpec(
        "04_expression_fear", "Expression classification, with fear singled out",
        "Measuring how accurately expression classifiers label posed and in-the-wild "
        "expressions, and how often they assign 'fear' to faces labelled otherwise.",
        "Expression label, dataset, race x gender where labelled.",
        "FER2013 PrivateTest, CK+48, JAFFE, CFD expressions.",
        ethical=(APPEARANCE_NOTE, "Facial configurations are not reliable, specific signals of "
                 "emotion (Barrett et al. 2019); 'fear' detection must not be used to infer "
                 "a person's state or intent."),
        headline_metrics=("accuracy", "fear_recall", "fear_false_assignment"),
        suite_parameters={"limit": None, "robustness_limit": 120}),
    AuditSpec(
        "05_attribute_audit", "Gender and age estimation by race x gender (Gender Shades "
        "style)",
        "Measuring gender-classification error and age error by intersectional group.",
        "Race x gender (dataset labels); skin type x gender (ITA measured from the pixels, "
        "lighter/darker); age.",
        "FairFace val, UTKFace, CFD; CelebA and LFW for the skin-tone stability check.",
        ethical=(APPEARANCE_NOTE, _RESEARCH, "Binary gender labels exclude non-binary people."),
        caveats=("Skin type is the ITA of one photo (facelab.face.skin): it moves with exposure "
                 "and white balance and is unstable across one person's photos (measured in "
                 "the notebook and docs/models.md); lighter/darker at 28 degrees only "
                 "approximates Fitzpatrick I-III vs IV-VI.",),
        headline_metrics=("gender_error_overall", "worst_best_ratio", "age_mae_overall",
                          "worst_best_ratio_skin_type", "skin_tone_one_class"),
        suite_parameters={"limit": None, "min_count": 30, "stability_limit": None,
                          "brightness_faces": 300}),
    AuditSpec(
        "06_train_expression", "An expression model trained by facelab",
        "Training a small expression classifier from scratch for comparison with the fer "
        "model in the other audits.",
        "Expression label; dataset.",
        "FER2013 PrivateTest folder release and CK+48 (subject-disjoint splits).",
        ethical=(APPEARANCE_NOTE,),
        headline_metrics=("val_accuracy", "test_accuracy", "test_fear_recall"),
        suite_parameters={"limit": None, "epochs": 30, "compare_limit": 300}),
]}


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (``$FACELAB_NOTEBOOKS`` overrides).

    Returns
    -------
    pathlib.Path
        ``$FACELAB_NOTEBOOKS`` when set, else ``notebooks/`` next to the ``facelab``
        package (the checkout it was imported from). Not checked for existence.
    """
    value = os.environ.get("FACELAB_NOTEBOOKS")
    return Path(value) if value else Path(__file__).resolve().parents[2] / "notebooks"


def resolve_audits(names: Sequence[str] | None = None) -> list[Path]:
    """Notebook paths for audit names (``02``, ``02_verification_demographics`` or a
    unique substring such as ``verification``); all notebooks when ``names`` is empty.

    Parameters
    ----------
    names : sequence of str, optional
        Audit names; each must match exactly one ``NN_*.ipynb`` of :func:`notebooks_dir`
        (its stem, the stem's ``NN`` prefix, or a substring of one stem only).

    Returns
    -------
    list of pathlib.Path
        One notebook per name, in the order given; every ``NN_*.ipynb``, sorted, when
        ``names`` is None or empty.

    Raises
    ------
    ValueError
        When a name matches no notebook or several (the message lists the known ones).
    """
    available = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return available
    out = []
    for name in names:
        hits = [p for p in available if p.stem == name or p.stem.startswith(f"{name}_")
                or name in p.stem]
        if len(hits) != 1:
            known = ", ".join(p.stem for p in available)
            raise ValueError(f"audit {name!r} matches {len(hits)} notebooks; known: {known}")
        out.append(hits[0])
    return out


#: Audits that must wait for others when audits run in parallel: 04 reads the model 06
#: trains; 03 embeds the same images with the same detector and embedders as 02 (CelebA,
#: FairFace, CFD), so it starts once 02's embeddings are in the feature cache instead of
#: computing them a second time beside it.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "04_expression_fear": ("06_train_expression",),
    "03_one_to_many_search": ("02_verification_demographics",),
}

#: Audits that use another audit's results, not only its cache: when that audit fails (or
#: is skipped) in the same call they are not run (status ``"skipped: <audit> failed"``),
#: since they would read an older run's output (04 would compare the fer model with a
#: model 06 trained earlier, or with none). 03 only waits for 02 (:data:`DEPENDS_ON`): it
#: computes what 02's cache does not hold and runs after a failed 02.
NEEDS_RESULTS_OF: dict[str, tuple[str, ...]] = {
    "04_expression_fear": ("06_train_expression",),
}


def parameter_defaults(notebook: Path) -> dict[str, Any]:
    """Literal values assigned in a notebook's ``parameters`` cell.

    Only plain ``name = <literal>`` assignments count (:func:`ast.literal_eval`); other
    statements and non-literal values are skipped. Read with :mod:`json`, without
    nbformat.

    Parameters
    ----------
    notebook : pathlib.Path
        An ``.ipynb`` file; its cells tagged ``parameters`` (papermill's convention) are
        read.

    Returns
    -------
    dict of str to Any
        ``{name: value}``.

    Raises
    ------
    ValueError
        When a parameters cell is not valid Python (the message names the notebook, the
        cell's number counted from 1 and the line in the cell).
    OSError
        When the file cannot be read.
    json.JSONDecodeError
        When it is not JSON.
    """
    out: dict[str, Any] = {}
    for node in _parameter_statements(notebook):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def _parameter_statements(notebook: Path) -> list[ast.stmt]:
    """The statements of a notebook's cells tagged ``parameters``, parsed (read with
    :mod:`json`, without nbformat); a cell that is not Python is a ValueError naming the
    notebook, the cell (counted from 1) and the line in the cell."""
    import json

    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    out: list[ast.stmt] = []
    for number, cell in enumerate(cells, 1):
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell.get("source", "")
        try:
            out += ast.parse("".join(source) if isinstance(source, list) else source).body
        except SyntaxError as exc:
            raise ValueError(f"{notebook}: the parameters cell (cell {number}) is not valid "
                             f"Python: line {exc.lineno} of the cell: {exc.msg}") from None
    return out


def parameter_names(notebook: Path) -> set[str]:
    """Every name assigned in a notebook's ``parameters`` cells, literal or not.

    Parameters
    ----------
    notebook : pathlib.Path
        An ``.ipynb`` file.

    Returns
    -------
    set of str
        The parameter names (papermill injects values only for these).

    Raises
    ------
    ValueError
        When a parameters cell is not valid Python (as :func:`parameter_defaults`).
    """
    names: set[str] = set()
    for node in _parameter_statements(notebook):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


#: Parameters the runner sets itself (never the user's concern).
RUNNER_PARAMETERS = frozenset({"output_dir"})


def check_parameters(notebooks: Sequence[Path], parameters: Mapping[str, Any]) -> None:
    """Check the user's parameters against the notebooks' ``parameters`` cells, before
    anything runs.

    papermill only warns about a name the notebook does not have and runs on with its
    default, so a misspelt ``-p limt 40`` would run the full audit; and a value of the
    wrong kind (``-p limit many``) fails minutes later, deep in the notebook.

    Parameters
    ----------
    notebooks : sequence of pathlib.Path
        The audits about to run.
    parameters : mapping of str to Any
        The user's parameters (``-p`` / ``-f``), applied to every notebook that has them.

    Raises
    ------
    ValueError
        When a name is a parameter of none of the notebooks (the message lists theirs), or
        a value's kind does not fit the notebook's default: a number where the default is
        an int or float (``None`` allowed, no bool), ``True``/``False`` where it is a bool.
        Other defaults (strings, lists, specs) are checked by the notebook itself.
    """
    if not parameters or not notebooks:
        return
    declared = {nb.stem: parameter_names(nb) for nb in notebooks}
    known = set().union(*declared.values()) - RUNNER_PARAMETERS
    unknown = sorted(set(parameters) - known)
    if unknown:
        which = notebooks[0].stem if len(notebooks) == 1 else "the audits run"
        raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} for {which}; its parameters: "
                         f"{', '.join(sorted(known))}")
    for nb in notebooks:
        defaults = parameter_defaults(nb)
        for name, value in parameters.items():
            if name not in defaults or value is None:
                continue
            default = defaults[name]
            if isinstance(default, bool):
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, int | float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                kind = "a number (or null)"
            else:
                continue
            if not ok:
                raise ValueError(f"parameter {name!r} of {nb.stem} must be {kind} (its default "
                                 f"is {default!r}), got {value!r}")

"""``results/index.html``: one page listing every audit run.

Rebuilt by :func:`facelab.report.runner.run_audits` (so after every ``facelab audit``) from what the
run folders hold: ``provenance.json`` (audit, start time, parameters, status, missing data
or error) and ``metrics.json`` (the ``findings`` table each audit records: numeric
:class:`facelab.metrics.findings.Finding` rows, formatted here; the figures).
Parameters are shown only where they differ from the defaults in the notebook's
``parameters`` cell. Each row links to the run's HTML report.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facelab.metrics.findings import findings_from_records
from facelab.report.audits import AUDITS, notebooks_dir, parameter_defaults

__all__ = ["collect_runs", "write_index", "run_findings", "INDEX_NAME"]

INDEX_NAME = "index.html"
#: Findings shown per run on the index (the rest are in the run's report).
MAX_FINDINGS = 6


#: Start of the status of a run whose provenance.json or metrics.json cannot be read.
UNREADABLE = "unreadable"


def _read(path: Path) -> tuple[dict, str | None]:
    """A run's JSON file and, when it exists but cannot be read or parsed as a JSON
    object, why (else None). A missing file is no problem (a failed run has no
    metrics.json)."""
    if not path.exists():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"{path.name}: {type(exc).__name__}: {exc}"
    if not isinstance(data, dict):
        return {}, f"{path.name}: not a JSON object ({type(data).__name__})"
    return data, None


def _defaults(notebook: str) -> dict[str, Any]:
    path = notebooks_dir() / f"{notebook}.ipynb"
    try:
        return parameter_defaults(path) if path.exists() else {}
    except ValueError:  # a broken parameters cell: every parameter is listed as changed
        return {}


def _changed(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    skip = {"output_dir"}
    return {k: v for k, v in params.items()
            if k not in skip and (k not in defaults or _norm(defaults[k]) != _norm(v))}


def _norm(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fmt(value: Any) -> str:
    x = _num(value)
    if x is None:
        return "" if value is None else str(value)
    if x == int(x) and abs(x) >= 1:
        return f"{int(x):,}"
    return f"{x:.4g}"


def run_findings(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """The run's findings as ``{finding, value, count, interval, how}`` strings for the
    index page.

    Parameters
    ----------
    metrics : mapping
        A run's ``metrics.json``; its ``findings`` entry is the table of
        :func:`facelab.metrics.findings.findings_table` (numeric ``count``, ``n``,
        ``ci_low``, ``ci_high``), read back with :func:`findings_from_records`.

    Returns
    -------
    list of dict
        One dict of display strings per finding (``count`` as ``"k/n"``, the interval as
        ``"lo–hi"``, formatted here from the numbers); empty when the run recorded no
        findings, or a table in the text schema used before (``"count": "3/40"``), so
        the index falls back to the audit's headline metrics.
    """
    try:
        records = findings_from_records(metrics.get("findings") or [])
    except (TypeError, ValueError):
        return []  # a run recorded before the numeric Finding schema
    out = []
    for f in records:
        prefix = " · ".join(p for p in (f.model, f.operating_point) if p)
        if f.count is not None and f.n is not None:
            count_text = f"{_fmt(f.count)}/{_fmt(f.n)}"
        elif f.n is not None:
            count_text = f"n={_fmt(f.n)}"
        else:
            count_text = _fmt(f.count)
        interval = (f"{_fmt(f.ci_low)}–{_fmt(f.ci_high)}"
                    if f.ci_low is not None and f.ci_high is not None else "")
        how = f.threshold_how
        if f.threshold is not None and _fmt(f.threshold) not in how:
            how = f"{_fmt(f.threshold)}: {how}" if how else _fmt(f.threshold)
        out.append({"finding": f"{prefix}: {f.finding}" if prefix else f.finding,
                    "value": _fmt(f.value), "count": count_text, "interval": interval,
                    "how": how})
    return out


def _headline_metrics(notebook: str, metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """Without a findings table: the audit's headline metrics (``AuditSpec``), with the
    ``<name>_ci`` interval when the run recorded one."""
    spec = AUDITS.get(notebook)
    rows = []
    for key in spec.headline_metrics if spec else ():
        if key not in metrics or isinstance(metrics[key], Mapping | list):
            continue
        ci = metrics.get(f"{key}_ci")
        interval = (f"{_fmt(ci[0])}–{_fmt(ci[1])}" if isinstance(ci, list) and len(ci) == 2
                    else "")
        rows.append({"finding": key.replace("_", " "), "value": _fmt(metrics[key]),
                     "count": "", "interval": interval, "how": ""})
    return rows


def _last_line(error: str | None) -> str:
    """The error's own message (its last line), without the traceback: the run's report
    has the rest."""
    import re

    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", error or "").splitlines()
             if ln.strip()]
    return lines[-1] if lines else ""


def collect_runs(results_root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run folder under ``results_root`` (those with ``provenance.json``), newest
    first, as dicts ready for the index.

    A ``provenance.json`` or ``metrics.json`` that exists but cannot be read or parsed
    as a JSON object gives the run the status ``"unreadable: <file>"`` and a note with
    the reason; a run whose provenance has no status is listed as ``unknown``.

    Parameters
    ----------
    results_root : str or os.PathLike
        The results folder; its direct subfolders are the runs.

    Returns
    -------
    list of dict
        Per run: ``run`` (folder name), ``audit``, ``started`` (ISO 8601 text, UTC),
        ``status``, ``note`` (missing data, or the last line of the error),
        ``changed`` (parameters that differ from the notebook's defaults, without
        ``output_dir``), ``findings`` (:func:`run_findings`, else the audit's headline
        metrics), ``report`` and ``figure`` (paths relative to ``results_root``, or
        None) and ``wall_seconds``.
    """
    root = Path(results_root)
    runs = []
    defaults_cache: dict[str, dict] = {}
    for prov_path in sorted(root.glob("*/provenance.json")):
        run = prov_path.parent
        prov, prov_problem = _read(prov_path)
        metrics, metrics_problem = _read(run / "metrics.json")
        problems = [p for p in (prov_problem, metrics_problem) if p]
        notebook = str(prov.get("notebook") or run.name)
        if notebook not in defaults_cache:
            defaults_cache[notebook] = _defaults(notebook)
        html_files = sorted(run.glob("*.html"))
        figures = [f for f in metrics.get("_figures", []) if (run / "figures" / f).is_file()]
        runs.append({
            "run": run.name, "audit": notebook, "started": prov.get("started") or "",
            "status": (f"{UNREADABLE}: " + ", ".join(p.split(":")[0] for p in problems)
                       if problems else prov.get("status") or "unknown"),
            "note": ("; ".join(problems) if problems
                     else prov.get("missing_data") or _last_line(prov.get("error"))),
            "changed": _changed(prov.get("parameters") or {}, defaults_cache[notebook]),
            "findings": run_findings(metrics) or _headline_metrics(notebook, metrics),
            "report": f"{run.name}/{html_files[0].name}" if html_files else None,
            "figure": f"{run.name}/figures/{figures[0]}" if figures else None,
            "wall_seconds": prov.get("wall_seconds"),
        })
    runs.sort(key=lambda r: r["started"], reverse=True)
    return runs


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1400px}
h1{font-size:1.5em}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.45em .6em;vertical-align:top;text-align:left;
font-size:.9em}
th{background:#f4f4f4}
td.status{font-weight:600;white-space:nowrap}
.ok{color:#1a7f37}.failed{color:#b42318}.needs{color:#9a6700}
table.findings td,table.findings th{border:none;padding:.1em .5em .1em 0;font-size:.85em}
code{font-size:.85em;background:#f6f6f6;padding:0 .2em}
pre{white-space:pre-wrap;font-size:.8em;margin:0}
img.thumb{max-width:220px;max-height:150px;border:1px solid #ddd}
"""


def _status_class(status: str) -> str:
    if status.startswith(UNREADABLE):
        return "failed"
    return {"ok": "ok", "failed": "failed"}.get(status, "needs")


def _render(runs: list[dict[str, Any]], title: str) -> str:
    e = html.escape
    rows = []
    for r in runs:
        params = "<br>".join(f"<code>{e(k)}={e(json.dumps(v))}</code>"
                             for k, v in r["changed"].items()) or "defaults"
        if r["findings"]:
            body = "".join(
                f"<tr><td>{e(f['finding'])}</td><td><b>{e(f['value'])}</b></td>"
                f"<td>{e(f['count'])}</td><td>{e(f['interval'])}</td></tr>"
                for f in r["findings"][:MAX_FINDINGS])
            more = len(r["findings"]) - MAX_FINDINGS
            extra = (f"<p>{more} more finding{'s' if more > 1 else ''} in the report.</p>"
                     if more > 0 else "")
            findings = ("<table class='findings'><tr><th>finding</th><th>value</th>"
                        f"<th>count</th><th>95% CI</th></tr>{body}</table>{extra}")
        elif r["note"]:
            findings = f"<pre>{e(r['note'])}</pre>"
        else:
            findings = "no findings table recorded"
        link = (f"<a href='{e(r['report'])}'>{e(r['run'])}</a>" if r["report"]
                else e(r["run"]))
        thumb = (f"<br><a href='{e(r['report'] or r['figure'])}'><img class='thumb' "
                 f"src='{e(r['figure'])}' alt='first figure of {e(r['run'])}'></a>"
                 if r["figure"] else "")
        started = r["started"].replace("T", " ")[:19]
        rows.append(
            f"<tr><td>{e(r['audit'])}<br>{link}{thumb}</td><td>{e(started)} UTC</td>"
            f"<td>{params}</td><td class='status {_status_class(r['status'])}'>"
            f"{e(r['status'])}</td><td>{findings}</td></tr>")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = ("<table><tr><th>audit / run</th><th>date</th><th>parameters (not default)"
             "</th><th>status</th><th>headline findings</th></tr>" + "".join(rows)
             + "</table>") if rows else "<p>No runs yet: <code>facelab audit</code>.</p>"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{e(title)}</h1><p>{len(runs)} run{'s' if len(runs) != 1 else ''}, newest "
            f"first; rebuilt {stamp} by <code>facelab audit</code>. Each run's folder holds "
            "its report (HTML), executed notebook, metrics.json, figures and "
            "provenance.json.</p>" + table + "</body></html>")


def write_index(results_root: str | os.PathLike, *, title: str = "facelab audit runs"
                ) -> Path:
    """Write ``<results_root>/index.html`` listing every run.

    The page (:func:`collect_runs`, at most :data:`MAX_FINDINGS` findings per run) is
    written to a temporary file and moved into place, so a reader never sees half a page.

    Parameters
    ----------
    results_root : str or os.PathLike
        The results folder (created if missing).
    title : str
        Page title and heading.

    Returns
    -------
    pathlib.Path
        The page written.
    """
    root = Path(results_root)
    root.mkdir(parents=True, exist_ok=True)
    page = _render(collect_runs(root), title)
    path = root / INDEX_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path

"""``segdata report``: one self-contained HTML page of a dataset's analyses, its annotators'
agreement and the evaluations of models trained on it.

Sections (keys of :data:`SECTIONS`): the dataset card, the long tail, small objects, and, when
given, annotation consistency (a ``segdata analyze consistency --json`` report) and evaluation
(one or more ``segdata eval --json`` reports, one column each). The page is built by
:mod:`segdata.render.html` (inline CSS, inline SVG plots, PNG images as ``data:`` URIs, no script,
no URL): it opens offline and prints. The long-tail and small-object analyses run here unless
their results are passed in; everything else is read from the reports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segdata.errors import InputError

from ..html import esc, page

#: section key -> heading, in page order
SECTIONS = {
    "dataset": "Dataset",
    "longtail": "The long tail",
    "small_objects": "Small objects",
    "consistency": "Annotation consistency",
    "evaluation": "Evaluation",
}
_CONSISTENCY_KEYS = ("a", "b", "images", "pixel_agreement", "miou", "breakdown")
_EVAL_KEYS = ("miou", "per_class", "buckets")


@dataclass(frozen=True)
class ReportPage:
    """A built report: the document and the keys of the sections it holds (page order)."""

    html: str
    sections: list[str] = field(default_factory=list)
    path: Path | None = None

    def to_dict(self) -> dict:
        """What ``segdata report --json`` prints."""
        return {"report": None if self.path is None else str(self.path), "sections": list(self.sections)}


def _read_json(path: Path, what: str, keys: Sequence[str]) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})", f"give the file {what} writes") from None
    if not isinstance(data, dict):
        raise InputError(path, f"a JSON object was expected, got {type(data).__name__}", f"give the file {what} writes")
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputError(path, f"not a report of {what}: missing {', '.join(missing)}", f"give the file {what} writes")
    return data


def read_consistency(path: str | Path) -> dict:
    """A ``segdata analyze consistency --json`` report; :class:`~segdata.errors.InputError` naming
    the file when it is missing, not JSON or not such a report."""
    return _read_json(Path(path), "`segdata analyze consistency --json`", _CONSISTENCY_KEYS)


def read_eval(path: str | Path) -> dict:
    """A ``segdata eval --json`` report (:class:`~segdata.errors.InputError` as
    :func:`read_consistency`)."""
    data = _read_json(Path(path), "`segdata eval --json`", _EVAL_KEYS)
    if not isinstance(data["per_class"], list) or not isinstance(data["buckets"], list):
        raise InputError(path, "per_class and buckets must be lists", "give the file `segdata eval --json` writes")
    return data


def _evaluations(evals) -> list[tuple[str, dict]]:
    """``(label, report)`` pairs from paths (label: the file's stem), dicts, results with
    ``to_dict()``, ``(label, any of these)`` pairs or a mapping label -> any of these."""
    items = list(evals.items()) if isinstance(evals, Mapping) else list(evals)
    out: list[tuple[str, dict]] = []
    for n, item in enumerate(items, 1):
        label = None
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            label, item = item
        if isinstance(item, (str, Path)):
            label = label or Path(item).stem
            item = read_eval(item)
        elif hasattr(item, "to_dict"):
            item = item.to_dict()
        if not isinstance(item, dict):
            raise TypeError(
                f"evaluation {n}: expected a path, a dict or a result with to_dict(), got {type(item).__name__}"
            )
        if label is None:
            s = item.get("settings") or {}
            label = str(s.get("pred") or s.get("name") or f"evaluation {n}")
        out.append((label, item))
    seen: dict[str, int] = {}
    unique = []
    for label, item in out:  # two files named alike (run1/eval.json, run2/eval.json) get numbered
        seen[label] = seen.get(label, 0) + 1
        unique.append((label if seen[label] == 1 else f"{label} ({seen[label]})", item))
    return unique


def build_page(
    ds,
    consistency=None,
    evals=(),
    *,
    split: str | None = None,
    layer: str = "objects",
    rule=None,
    bootstrap: int = 100,
    workers: int | None = None,
    executor=None,
    longtail=None,
    sizes=None,
    overlays: int = 3,
    top: int = 15,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReportPage:
    """Build the report of ``ds`` (a :class:`~segdata.format.Dataset` or its path).

    Parameters
    ----------
    consistency : dict, path or ConsistencyResult, optional
        The annotators' agreement: a ``segdata analyze consistency --json`` report (or its file),
        or the result of :func:`segdata.analyses.consistency.compare`.
    evals : sequence or mapping
        Evaluation reports (``segdata eval --json``): paths (labelled by the file's stem), dicts,
        ``EvalResult`` objects, ``(label, report)`` pairs, or a mapping label -> report.
    split, layer, rule, bootstrap
        Of the long-tail and small-object analyses (rule: LVIS buckets by default; bootstrap: the
        power-law goodness-of-fit resamples).
    workers, executor
        For the small-object analysis (connected components, when the layer has no instances).
    longtail, sizes : optional
        The analyses' results when already computed (:class:`LongtailResult`, :class:`SizeResult`).
    overlays : int
        Images of the disagreement drawn (those that disagree most; 0: none).
    top : int
        Rows of the class tables.
    progress : callable, optional
        ``progress(done, total)`` after each step.
    """
    from segdata.analyses import longtail as lt
    from segdata.analyses import small_objects as so
    from segdata.format import Dataset
    from segdata.summary import summarize

    from .consistency import consistency_section, disagreement_overlays
    from .dataset import dataset_section
    from .evaluation import evaluation_section
    from .longtail import longtail_section
    from .sizes import sizes_section

    ds = ds if isinstance(ds, Dataset) else Dataset(ds)
    if isinstance(consistency, (str, Path)):
        consistency = read_consistency(consistency)
    evaluations = _evaluations(evals)
    total = 4 + (consistency is not None) + bool(evaluations)
    done = 0

    def step():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    sections = []
    sections.append(("dataset", SECTIONS["dataset"], dataset_section(ds, summarize(ds))))
    step()
    if longtail is None:
        longtail = lt.analyze(ds, split=split, layer=layer, rule=rule or lt.LVIS, bootstrap=bootstrap)
    sections.append(("longtail", SECTIONS["longtail"], longtail_section(longtail, top=top)))
    step()
    if sizes is None:
        sizes = so.analyze(ds, split=split, layer=layer, workers=workers, executor=executor)
    bucket_of = dict(zip(longtail.frequencies["class_id"].tolist(), longtail.frequencies["bucket"].tolist()))
    sections.append(
        (
            "small_objects",
            SECTIONS["small_objects"],
            sizes_section(sizes, bucket_of, top=top, bucket_order=[*longtail.rule.names, lt.ABSENT]),
        )
    )
    step()
    if consistency is not None:
        report = consistency if isinstance(consistency, dict) else consistency.report(per_image=True)
        images, note = disagreement_overlays(consistency, top=overlays)
        sections.append(("consistency", SECTIONS["consistency"], consistency_section(report, images, note, top=top)))
        step()
    if evaluations:
        sections.append(("evaluation", SECTIONS["evaluation"], evaluation_section(evaluations, top=top + 5)))
        step()
    source = ds.manifest.get("source", {}) or {}
    subtitle = " · ".join(
        x
        for x in (
            " ".join(str(source[k]) for k in ("family", "layout", "release") if source.get(k)),
            f"{len(ds):,} images",
            f"layer {layer}" + (f", split {split}" if split else ""),
            "made by segdata",
        )
        if x
    )
    document = page(title or f"segdata report: {ds.name}", subtitle, sections)
    step()
    return ReportPage(document, [key for key, _, _ in sections])


def build_report(ds, consistency=None, evals=(), **options) -> str:
    """The report of ``ds`` as one HTML document (see :func:`build_page` for the options)."""
    return build_page(ds, consistency, evals, **options).html


def write_report(path: str | Path, ds, consistency=None, evals=(), **options) -> ReportPage:
    """Build the report and write it to ``path`` whole or not at all (a temporary sibling renamed
    into place). Returns the :class:`ReportPage`, with ``path`` set."""
    built = build_page(ds, consistency, evals, **options)
    path = Path(path)
    tmp = path.with_name(path.name + ".segdata-partial")
    try:
        tmp.write_text(built.html, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return ReportPage(built.html, built.sections, path)


__all__ = [
    "SECTIONS",
    "ReportPage",
    "build_page",
    "build_report",
    "esc",
    "read_consistency",
    "read_eval",
    "write_report",
]

"""Choosing a class vocabulary by pixel share, the way ADE20K's 150 benchmark classes were chosen.

The SceneParsing benchmark kept the 150 classes of full ADE20K with the most pixels; they cover
92.75% of all pixels. :func:`select_vocabulary` applies the same rule to any converted dataset:
the top ``K`` classes by pixels, or the fewest classes reaching a pixel ``coverage``, optionally
only among classes seen in at least ``min_images`` images. Shares are fractions of the labelled
pixels (classes flagged ignore and unlabeled pixels left out, see :mod:`.longtail`).
"""

from __future__ import annotations

import pandas as pd

from segdata.format import Dataset

from .longtail import class_frequencies


def select_vocabulary(
    freq: pd.DataFrame, *, top: int | None = None, coverage: float | None = None, min_images: int = 0
) -> pd.DataFrame:
    """The classes a vocabulary keeps, in rank order, with ``train_id`` 0..K-1.

    Parameters
    ----------
    freq : DataFrame
        From :func:`~segdata.analyses.longtail.class_frequencies`.
    top : int, optional
        Keep the ``top`` classes with most pixels.
    coverage : float, optional
        Keep the fewest classes whose pixels reach this fraction of the labelled pixels (of
        all classes, eligible or not).
    min_images : int
        Only classes present in at least this many images are eligible.

    Returns
    -------
    DataFrame
        The kept rows of ``freq`` plus ``train_id`` and ``cumulative_share``.
    """
    if (top is None) == (coverage is None):
        raise ValueError("give exactly one of top or coverage")
    if top is not None and not 1 <= top <= 255:
        raise ValueError(f"top must be 1..255 (label PNGs keep 255 for ignore), got {top}")
    if coverage is not None and not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    eligible = freq[(freq["pixels"] > 0) & (freq["images"] >= min_images)].sort_values("rank")
    cumulative = eligible["pixel_share"].cumsum()
    if top is not None:
        kept = eligible.head(top)
    else:
        reach = (cumulative >= coverage - 1e-12).to_numpy()
        n = int(reach.argmax()) + 1 if reach.any() else len(eligible)
        kept = eligible.head(n)
        if len(kept) > 255:
            raise ValueError(f"reaching {coverage:.2%} takes {len(kept)} classes; a label PNG holds at most 255")
    kept = kept.assign(cumulative_share=cumulative.loc[kept.index].to_numpy())
    return kept.assign(train_id=range(len(kept))).reset_index(drop=True)


def vocabulary_report(freq: pd.DataFrame, kept: pd.DataFrame) -> dict:
    """What a vocabulary covers and drops, as a JSON-ready dict."""
    dropped = freq[~freq["class_id"].isin(kept["class_id"]) & (freq["pixels"] > 0)]
    return {
        "classes": int(len(kept)),
        "pixel_coverage": float(kept["pixel_share"].sum()),
        "classes_dropped": int(len(dropped)),
        "pixels_dropped_share": float(dropped["pixel_share"].sum()),
        "largest_dropped": [
            {"class_id": int(r.class_id), "name": r.name, "pixel_share": float(r.pixel_share), "images": int(r.images)}
            for r in dropped.sort_values("rank").head(10).itertuples()
        ],
        "vocabulary": [
            {"train_id": int(r.train_id), "class_id": int(r.class_id), "name": r.name, "pixel_share": float(r.pixel_share),
             "cumulative_share": float(r.cumulative_share), "images": int(r.images)}
            for r in kept.itertuples()
        ],  # fmt: skip
    }


def build_vocabulary(
    ds: Dataset,
    *,
    top: int | None = None,
    coverage: float | None = None,
    min_images: int = 0,
    split: str | None = None,
    layer: str = "objects",
):
    """Select a vocabulary on ``ds`` and return ``(Vocabulary, report)``; the vocabulary is what
    ``segdata export --to label-png --vocab`` reads (see :mod:`segdata.converters.label_png`)."""
    from segdata.converters.label_png import VocabEntry, Vocabulary

    freq = class_frequencies(ds, split=split, layer=layer)
    kept = select_vocabulary(freq, top=top, coverage=coverage, min_images=min_images)
    colors = dict(zip(ds.classes["class_id"], ds.classes["color"]))
    entries = tuple(
        VocabEntry(int(r.train_id), str(r.name), (int(r.class_id),), colors.get(r.class_id) or None)
        for r in kept.itertuples()
    )
    return Vocabulary(entries, source=f"vocabulary of {ds.name}"), vocabulary_report(freq, kept)

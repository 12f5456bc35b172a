"""Choosing a class vocabulary by pixel share, the way ADE20K's 150 benchmark classes were chosen.

The SceneParsing benchmark kept the 150 classes of full ADE20K with the most pixels; they cover
92.75% of all pixels. :func:`select_vocabulary` applies the same rule to any converted dataset:
the top ``K`` classes by pixels, or the fewest classes reaching a pixel ``coverage``, optionally
only among classes seen in at least ``min_images`` images. Shares are fractions of the labelled
pixels (classes flagged ignore and unlabeled pixels left out, see :mod:`.longtail`).
:func:`build_vocabulary` returns a :class:`segdata.vocab.Vocabulary` (any number of classes: the
255-class cap belongs to the label-PNG export), or, with ``from_train_ids``, the dataset's own
vocabulary (``classes.parquet``'s ``train_id``) with the same coverage report.
"""

from __future__ import annotations

import pandas as pd

from segdata.format import CLASSES_FILE, Dataset
from segdata.vocab import VocabEntry, Vocabulary

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
    if top is not None and top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
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
            {
                "train_id": int(r.train_id),
                "class_id": int(r.class_id),
                "name": r.name,
                "pixel_share": float(r.pixel_share),
                "cumulative_share": float(r.cumulative_share),
                "images": int(r.images),
            }
            for r in kept.itertuples()
        ],
    }


def build_vocabulary(
    ds: Dataset,
    *,
    top: int | None = None,
    coverage: float | None = None,
    min_images: int = 0,
    split: str | None = None,
    layer: str = "objects",
    from_train_ids: bool = False,
) -> tuple[Vocabulary, dict]:
    """Select a vocabulary on ``ds`` and return ``(Vocabulary, report)``.

    Exactly one of ``top``, ``coverage`` (see :func:`select_vocabulary`) or ``from_train_ids``
    (the dataset's own train ids, :meth:`segdata.vocab.Vocabulary.from_train_ids`; the report
    then lists its classes in train id order). The vocabulary is what ``segdata export --to
    label-png --vocab`` reads once written (:meth:`~segdata.vocab.Vocabulary.to_file`), and holds
    any number of classes; ``ignore_index`` is 255 up to 255 classes, 65535 above.

    Raises
    ------
    ValueError
        Not exactly one rule, or a bad ``top``/``coverage``.
    InputError
        ``from_train_ids`` on a dataset whose source defines no train ids (naming classes.parquet).
    """
    if sum([top is not None, coverage is not None, bool(from_train_ids)]) != 1:
        raise ValueError("give exactly one of top, coverage or from_train_ids")
    freq = class_frequencies(ds, split=split, layer=layer)
    if from_train_ids:
        vocab = Vocabulary.from_train_ids(ds.classes, source=str(ds.path / CLASSES_FILE))
        train_id = {c: e.train_id for e in vocab.entries for c in e.class_ids}
        kept = freq[freq["class_id"].isin(list(train_id))]
        kept = kept.assign(train_id=kept["class_id"].map(train_id)).sort_values(["train_id", "class_id"])
        kept = kept.assign(cumulative_share=kept["pixel_share"].cumsum()).reset_index(drop=True)
        return vocab, vocabulary_report(freq, kept)
    kept = select_vocabulary(freq, top=top, coverage=coverage, min_images=min_images)
    colors = dict(zip(ds.classes["class_id"], ds.classes["color"]))
    entries = tuple(
        VocabEntry(int(r.train_id), str(r.name), (int(r.class_id),), colors.get(r.class_id) or None)
        for r in kept.itertuples()
    )
    return Vocabulary(entries, source=f"vocabulary of {ds.name}"), vocabulary_report(freq, kept)

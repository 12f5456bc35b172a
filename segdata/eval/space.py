"""The id space of an evaluation: which classes are scored, what a ground-truth class and a
predicted value mean in it.

The evaluated classes are the entries of a :class:`~segdata.vocab.Vocabulary` (eval index =
train id ``0..K-1``): the one given (``--vocab``), else the source's own training ids
(``classes.parquet``'s ``train_id``: Cityscapes' 19, SceneParsing's 150, VOC's 21), else every
class not flagged ``ignore``. Ground-truth pixels of a class outside the vocabulary (flagged
``ignore`` by the source, or not chosen) and of ``class_id`` 0 (unlabeled) are dropped before
counting: they are the dataset's ignore rule.

A prediction value maps to an eval index ``0..K-1``, to :attr:`EvalSpace.miss` (``K``: no
prediction, or a class that is not evaluated; the pixel is a false negative of its ground-truth
class and nobody's false positive, as cityscapesScripts and mmsegmentation count it), or to
:data:`INVALID` (a value outside the id space: an error naming the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, SelectionError
from ..format import Dataset
from ..vocab import SOURCE_TRAIN_IGNORE, Vocabulary

PRED_IDS = ("train", "source", "unified")
INVALID = -2  #: a prediction value outside the id space
IGNORED = -1  #: a ground-truth class that is not evaluated
#: prediction tables cover every value a 16-bit PNG can hold
PRED_VALUES = 1 << 16


@dataclass(frozen=True)
class EvalSpace:
    """The evaluated classes and the two lookup tables into them.

    Attributes
    ----------
    vocab : Vocabulary
        Its entries are the evaluated classes, eval index = train id.
    pred_ids : str
        ``train``, ``source`` or ``unified``: what a prediction value means.
    gt_lut : ndarray of int32, indexed by unified ``class_id``
        Eval index ``0..K-1``, or :data:`IGNORED` (-1).
    pred_lut : ndarray of int32, shape (65536,)
        Eval index ``0..K-1``, ``K`` (:attr:`miss`), or :data:`INVALID` (-2).
    miss_values : tuple of int
        The prediction values that mean "no prediction" (or a class not evaluated).
    ignore : str
        The dataset's ignore rule in words, stated in every report.
    """

    vocab: Vocabulary
    pred_ids: str
    gt_lut: np.ndarray
    pred_lut: np.ndarray
    miss_values: tuple[int, ...]
    ignore: str

    @property
    def num_classes(self) -> int:
        return self.vocab.num_classes

    @property
    def miss(self) -> int:
        """The column of the confusion matrix for "no prediction" (``K``)."""
        return self.vocab.num_classes

    @property
    def names(self) -> list[str]:
        return self.vocab.names

    @property
    def class_ids(self) -> list[tuple[int, ...]]:
        """The unified class ids merged into each evaluated class."""
        return [tuple(e.class_ids) for e in self.vocab.entries]

    def pred_id_of(self, index: int) -> int | None:
        """The prediction value of eval index ``index`` (the smallest when several map to it)."""
        hits = np.flatnonzero(self.pred_lut == index)
        return int(hits[0]) if hits.size else None

    def describe_pred_ids(self) -> str:
        """The valid prediction values in words (for error messages)."""
        valid = np.flatnonzero(self.pred_lut >= 0)
        if not valid.size:
            return "none"
        k = self.num_classes
        if self.pred_ids == "train":
            text = f"train ids 0..{k - 1}"
        elif valid.size > 12:
            text = f"{valid.size - len(self.miss_values)} {self.pred_ids} ids in {int(valid[0])}..{int(valid[-1])}"
        else:
            text = f"{self.pred_ids} ids {', '.join(map(str, valid.tolist()))}"
        if self.miss_values:
            text += f" ({', '.join(map(str, self.miss_values))} = no prediction)"
        return text

    @classmethod
    def build(cls, ds: Dataset, pred_ids: str = "train", vocab: Vocabulary | str | Path | None = None) -> EvalSpace:
        """The id space of evaluating ``ds`` with predictions in ``pred_ids``.

        ``vocab`` (a :class:`Vocabulary` or a vocabulary file) chooses the evaluated classes;
        default: the source's training ids, else every class not flagged ``ignore``. With a
        vocabulary, ``train`` predictions are in its train ids.

        Raises
        ------
        SelectionError
            ``pred_ids`` is not one of :data:`PRED_IDS`.
        InputError
            The vocabulary does not fit the dataset's classes (naming the vocabulary file).
        """
        if pred_ids not in PRED_IDS:
            raise SelectionError(f"--pred-ids must be one of {', '.join(PRED_IDS)}, got {pred_ids!r}")
        classes = ds.classes
        if vocab is None:
            vocab = default_vocabulary(ds)
        elif not isinstance(vocab, Vocabulary):
            vocab = Vocabulary.from_file(vocab)
        k = vocab.num_classes
        if k == 0:
            raise InputError(vocab.source, "the vocabulary has no class: nothing to evaluate")
        lut = vocab.lookup(classes, dtype=np.int64)
        gt_lut = np.where((lut >= 0) & (lut < k), lut, IGNORED).astype(np.int32)

        pred_lut = np.full(PRED_VALUES, INVALID, dtype=np.int32)
        miss: list[int] = []
        if pred_ids == "train":
            pred_lut[:k] = np.arange(k, dtype=np.int32)
            if 0 <= vocab.ignore_index < PRED_VALUES:
                pred_lut[vocab.ignore_index] = k
                miss.append(vocab.ignore_index)
        else:
            column = "source_id" if pred_ids == "source" else "class_id"
            values = pd.array(classes[column], dtype="Int64")
            ok = ~pd.isna(values)
            ok &= (values.fillna(-1) >= 0) & (values.fillna(-1) < PRED_VALUES)
            ok = np.asarray(ok, dtype=bool)
            vals = np.asarray(values[ok], dtype=np.int64)
            cids = classes["class_id"].to_numpy(dtype=np.int64)[ok]
            idx = np.where(cids < len(gt_lut), gt_lut[np.minimum(cids, len(gt_lut) - 1)], IGNORED)
            pred_lut[vals] = np.where(idx >= 0, idx, k)
            miss.extend(int(v) for v in vals[idx < 0])
            # the source's own "nothing" values when no class uses them: 0 (unlabeled / ADE "other")
            # and 255 (VOC void, label PNGs' ignore)
            for nothing in (0, 255):
                if pred_lut[nothing] == INVALID:
                    pred_lut[nothing] = k
                    miss.append(nothing)
        return cls(vocab, pred_ids, gt_lut, pred_lut, tuple(sorted(set(miss))), ignore_rule(ds, vocab, gt_lut))


def default_vocabulary(ds: Dataset) -> Vocabulary:
    """The classes a dataset is evaluated on by default: its source's training ids where it
    defines them (``classes.parquet``'s ``train_id``), else every class not flagged ``ignore``."""
    classes = ds.classes
    tid = pd.array(classes.get("train_id", pd.Series(dtype="Int64")), dtype="Int64")
    has = ~pd.isna(tid) & (tid.fillna(SOURCE_TRAIN_IGNORE) != SOURCE_TRAIN_IGNORE)
    if np.asarray(has, dtype=bool).any():
        return Vocabulary.from_train_ids(classes, source=str(ds.path / "classes.parquet"))
    return Vocabulary.default(classes, source=str(ds.path / "classes.parquet"))


def ignore_rule(ds: Dataset, vocab: Vocabulary, gt_lut: np.ndarray) -> str:
    """The dataset's ignore rule in words: what ground truth is dropped before counting."""
    classes = ds.classes
    flagged = classes[classes["ignore"].fillna(False).astype(bool)]
    family = str(ds.manifest.get("source", {}).get("family", ""))
    cids = classes["class_id"].to_numpy(dtype=np.int64)
    outside = classes[(gt_lut[np.minimum(cids, len(gt_lut) - 1)] < 0) & ~classes["ignore"].fillna(False).astype(bool)]
    parts = ["class_id 0 (no annotation)"]
    if len(flagged):
        label = {"cityscapes": "ignoreInEval", "voc": "void"}.get(family, "ignore")
        names = ", ".join(flagged["name"].astype(str).head(8)) + (", ..." if len(flagged) > 8 else "")
        parts.append(f"{len(flagged)} classes flagged {label} ({names})")
    if len(outside):
        parts.append(f"{len(outside)} classes outside the vocabulary")
    return "ignored ground truth: " + "; ".join(parts)

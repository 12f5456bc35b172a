"""Checkpoints of ``segdata train``, and loading a model to evaluate from any of three kinds of spec.

The checkpoint file (``RUN/checkpoint.pt``, written by :func:`save_checkpoint`, read by
:func:`load_checkpoint`) is a ``torch.save`` dict::

    {"format": "segdata-checkpoint", "format_version": 1,
     "arch": "deeplab-small", "arch_args": {...}, "num_classes": K,
     "vocab": Vocabulary.to_dict() or None,          # train ids 0..K-1 = output channels
     "normalize": {"mean": [r, g, b], "std": [r, g, b]},  # of RGB in [0, 1]
     "state_dict": {...}, "optimizer": {...} or None, "scheduler": {...} or None,
     "iter": int, "seed": int or None, "args": {...}, "rng": {...} or None}

Loading checks the format, the version and the keys a model needs (``arch``, ``arch_args``,
``num_classes``, ``state_dict``, and ``vocab`` against ``num_classes``); other keys are kept as
they are (a newer trainer may add some).

:func:`load_model` takes what ``segdata eval --model SPEC`` takes:

- a segdata checkpoint (a file holding the dict above): the network is rebuilt with
  :func:`segdata.torch.models.build` and its weights loaded;
- a TorchScript file (``torch.jit.save``): loaded with ``torch.jit.load``; an extra file
  ``segdata.json`` in the archive (:func:`save_torchscript` writes it) may give ``normalize`` and
  ``vocab``;
- ``module:factory`` (or ``path/to/file.py:factory``): the module is imported and ``factory()``
  called, which returns an ``nn.Module``. Input normalisation comes from an attribute
  ``segdata_normalize = {"mean": [...], "std": [...]}`` of the factory (or of the module it
  returns), or from the same text in the factory's docstring; a vocabulary from an attribute
  ``segdata_vocab`` (a :class:`~segdata.vocab.Vocabulary`, its dict, or a vocabulary file).

The normalisation default is ImageNet's (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225 of
RGB in [0, 1]): ``x = (rgb / 255 - mean) / std``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import pickle
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..vocab import Vocabulary

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "IMAGENET_NORMALIZE",
    "LoadedModel",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "save_torchscript",
]

CHECKPOINT_FORMAT = "segdata-checkpoint"
CHECKPOINT_VERSION = 1
#: ImageNet statistics of RGB in [0, 1]: the normalisation when a model says nothing
IMAGENET_NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
#: the extra file of a TorchScript archive that carries segdata's metadata
TORCHSCRIPT_EXTRA = "segdata.json"
_REQUIRED = ("arch", "arch_args", "num_classes", "state_dict")
_FACTORY = re.compile(r"^(?P<module>[^:]+):(?P<attr>[A-Za-z_][A-Za-z0-9_.]*)$")


@dataclass(frozen=True)
class LoadedModel:
    """What :func:`load_model` returns (it unpacks as ``model, normalize, vocab``).

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode, on the device asked for. Its output: logits ``(B, C, h, w)`` (or a dict
        with ``"out"``, or a tuple whose first item is the logits).
    normalize : dict
        ``{"mean": [3 floats], "std": [3 floats]}`` of RGB in [0, 1].
    vocab : Vocabulary or None
        Output channel c = train id c of this vocabulary; None when the model does not say.
    source : str
        The spec, for messages.
    """

    model: torch.nn.Module
    normalize: dict
    vocab: Vocabulary | None
    source: str

    def __iter__(self):
        return iter((self.model, self.normalize, self.vocab))


def check_normalize(value, where: str) -> dict:
    """``{"mean": [3 floats], "std": [3 positive floats]}`` from ``value``, or InputError naming ``where``."""
    try:
        mean = [float(v) for v in value["mean"]]
        std = [float(v) for v in value["std"]]
    except (TypeError, KeyError, ValueError):
        raise InputError(where, f"normalize must be {{'mean': [r, g, b], 'std': [r, g, b]}}, got {value!r}") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise InputError(where, f"normalize needs 3 means and 3 positive stds, got {value!r}")
    return {"mean": mean, "std": std}


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | Path,
    *,
    arch: str,
    num_classes: int,
    state_dict: dict,
    arch_args: dict | None = None,
    vocab: Vocabulary | dict | None = None,
    normalize: dict | None = None,
    optimizer: dict | None = None,
    scheduler: dict | None = None,
    iter: int = 0,
    seed: int | None = None,
    args: dict | None = None,
    rng: dict | None = None,
) -> Path:
    """Write a segdata checkpoint atomically (a temporary file renamed over ``path``).

    ``vocab`` is stored as :meth:`Vocabulary.to_dict`; ``normalize`` defaults to ImageNet's.
    Returns the path.
    """
    path = Path(path)
    if isinstance(vocab, Vocabulary):
        vocab = vocab.to_dict()
    if vocab is not None and Vocabulary.from_dict(vocab, source=str(path)).num_classes != int(num_classes):
        raise ValueError(f"vocabulary has {len(vocab.get('classes', []))} classes, the model {num_classes}")
    data = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": str(arch),
        "arch_args": dict(arch_args or {}),
        "num_classes": int(num_classes),
        "vocab": vocab,
        "normalize": check_normalize(normalize or IMAGENET_NORMALIZE, str(path)),
        "state_dict": state_dict,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "iter": int(iter),
        "seed": seed,
        "args": dict(args or {}),
        "rng": rng,
    }
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _torch_load(path: Path, map_location):
    """``torch.load``: weights only first; a checkpoint holding other objects (numpy RNG states
    in ``rng``) is the user's own file, loaded in full."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass
    return torch.load(path, map_location=map_location, weights_only=False)


def validate_checkpoint(data, path: str | Path) -> dict:
    """Check a loaded checkpoint dict; return it. InputError naming ``path`` when it is not one."""
    if not isinstance(data, dict) or "format" not in data:
        kind = type(data).__name__
        hint = (
            "a bare state_dict has no architecture: save a segdata checkpoint, a TorchScript file, or use module:factory"
            if isinstance(data, dict)
            else None
        )
        raise InputError(path, f"not a segdata checkpoint (a {kind} without a 'format' key)", hint)
    if data["format"] != CHECKPOINT_FORMAT:
        raise InputError(path, f"format is {data['format']!r}, expected {CHECKPOINT_FORMAT!r}")
    if data.get("format_version") != CHECKPOINT_VERSION:
        raise InputError(
            path, f"checkpoint format version {data.get('format_version')!r}, this segdata reads {CHECKPOINT_VERSION}"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise InputError(path, f"checkpoint lacks {', '.join(missing)}")
    if not isinstance(data["arch"], str) or not isinstance(data["arch_args"], dict):
        raise InputError(path, "checkpoint 'arch' must be a name and 'arch_args' a dict")
    if not isinstance(data["num_classes"], int) or data["num_classes"] < 1:
        raise InputError(path, f"checkpoint num_classes must be an integer >= 1, got {data['num_classes']!r}")
    if not isinstance(data["state_dict"], dict):
        raise InputError(path, "checkpoint 'state_dict' is not a dict")
    if data.get("vocab") is not None:
        vocab = Vocabulary.from_dict(data["vocab"], source=str(path))
        if vocab.num_classes != data["num_classes"]:
            raise InputError(path, f"vocabulary has {vocab.num_classes} classes, num_classes is {data['num_classes']}")
    data["normalize"] = check_normalize(data.get("normalize") or IMAGENET_NORMALIZE, str(path))
    return data


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read and check a segdata checkpoint (see the module docstring for its keys).

    Raises
    ------
    InputError
        Naming the file: missing, unreadable, not a torch file, not a segdata checkpoint, a key
        missing or of the wrong kind, another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found" if not path.exists() else "not a file")
    try:
        data = _torch_load(path, map_location)
    except InputError:
        raise
    except Exception as exc:  # torch raises many types for a file that is not its own
        raise InputError(path, f"not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    return validate_checkpoint(data, path)


# --------------------------------------------------------------------------- models


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip holding ``<name>/code/`` (a ``torch.save`` zip has none)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in name for name in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def save_torchscript(model: torch.nn.Module, path: str | Path, *, normalize=None, vocab=None, example=None) -> Path:
    """Script (or trace with ``example``) ``model`` and save it with segdata's metadata
    (``normalize``, ``vocab``) as the archive's extra file ``segdata.json``. Returns the path."""
    path = Path(path)
    if isinstance(vocab, Vocabulary):
        vocab = vocab.to_dict()
    meta = {"normalize": check_normalize(normalize or IMAGENET_NORMALIZE, str(path)), "vocab": vocab}
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x; the files it wrote still load
        warnings.simplefilter("ignore", DeprecationWarning)
        module = model if isinstance(model, torch.jit.ScriptModule) else None
        if module is None:
            module = torch.jit.trace(model, example) if example is not None else torch.jit.script(model)
        torch.jit.save(module, str(path), _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})
    return path


def _load_torchscript(path: Path, device) -> LoadedModel:
    extra = {TORCHSCRIPT_EXTRA: ""}
    try:
        with warnings.catch_warnings():  # deprecated in torch 2.x, still the format users hold
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:
        raise InputError(path, f"cannot load the TorchScript file ({type(exc).__name__}: {str(exc)[:200]})") from None
    normalize, vocab = dict(IMAGENET_NORMALIZE), None
    raw = extra[TORCHSCRIPT_EXTRA]
    if raw:
        try:
            meta = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"{TORCHSCRIPT_EXTRA} inside the archive is not JSON ({exc})") from None
        if meta.get("normalize") is not None:
            normalize = check_normalize(meta["normalize"], f"{path} ({TORCHSCRIPT_EXTRA})")
        if meta.get("vocab") is not None:
            vocab = Vocabulary.from_dict(meta["vocab"], source=f"{path} ({TORCHSCRIPT_EXTRA})")
    return LoadedModel(model.eval(), normalize, vocab, str(path))


def _load_segdata_checkpoint(path: Path, data: dict, device) -> LoadedModel:
    from .models import build

    try:
        model = build(data["arch"], data["num_classes"], **data["arch_args"])
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    state = data["state_dict"]
    if state and all(key.startswith("module.") for key in state):  # saved from DistributedDataParallel
        state = {key[len("module.") :]: value for key, value in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(path, f"weights do not fit {data['arch']}: {' '.join(first[:3])[:300]}") from None
    vocab = Vocabulary.from_dict(data["vocab"], source=str(path)) if data.get("vocab") is not None else None
    return LoadedModel(model.to(device).eval(), data["normalize"], vocab, str(path))


def _docstring_normalize(doc: str | None, where: str) -> dict | None:
    """``segdata_normalize = {...}`` (or ``segdata_normalize: {...}``) in a docstring."""
    if not doc:
        return None
    match = re.search(r"segdata_normalize\s*[:=]\s*(\{[^{}]*\})", doc)
    if match is None:
        return None
    try:
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        raise InputError(where, f"segdata_normalize in the docstring is not a literal dict: {match.group(1)}") from None
    return check_normalize(value, where)


def _import_factory(spec: str):
    match = _FACTORY.match(spec)
    if match is None:
        raise InputError(spec, "not a file, and not module:factory")
    module_name, attr = match.group("module"), match.group("attr")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise InputError(file, "factory module file not found")
            name = f"_segdata_factory_{abs(hash(str(file.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(name, file)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            loader_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:  # `segdata eval` run as a script
                sys.path.append(os.getcwd())
            module = importlib.import_module(module_name)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(spec, f"cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(spec, f"module {module_name} has no attribute {attr}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(spec, f"{attr} in {module_name} is not callable")
    return obj


def _as_vocab(value, where: str) -> Vocabulary | None:
    if value is None or isinstance(value, Vocabulary):
        return value
    if isinstance(value, dict):
        return Vocabulary.from_dict(value, source=where)
    if isinstance(value, (str, Path)):
        return Vocabulary.from_file(value)
    raise InputError(
        where, f"segdata_vocab must be a Vocabulary, its dict or a vocabulary file, got {type(value).__name__}"
    )


def _load_factory(spec: str, device) -> LoadedModel:
    factory = _import_factory(spec)
    try:
        model = factory()
    except Exception as exc:
        raise InputError(spec, f"the factory failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(spec, f"the factory returned a {type(model).__name__}, not a torch.nn.Module")
    normalize = None
    for holder in (factory, model):
        value = getattr(holder, "segdata_normalize", None)
        if value is not None:
            normalize = check_normalize(value, spec)
            break
    if normalize is None:
        normalize = _docstring_normalize(getattr(factory, "__doc__", None), spec) or dict(IMAGENET_NORMALIZE)
    vocab = None
    for holder in (factory, model):
        if getattr(holder, "segdata_vocab", None) is not None:
            vocab = _as_vocab(holder.segdata_vocab, spec)
            break
    return LoadedModel(model.to(device).eval(), normalize, vocab, spec)


def load_model(spec: str | Path, device="cpu") -> LoadedModel:
    """The model to evaluate, from a segdata checkpoint, a TorchScript file or ``module:factory``.

    Parameters
    ----------
    spec : str or Path
        A file (a segdata checkpoint or a TorchScript archive), or ``module:factory`` /
        ``path/to/file.py:factory``.
    device : str or torch.device

    Returns
    -------
    LoadedModel
        ``(model in eval mode on device, normalize, vocab or None)``; unpacks as a 3-tuple.

    Raises
    ------
    InputError
        Naming the spec: a missing file, a file that is neither a segdata checkpoint nor a
        TorchScript archive, weights that do not fit the architecture, a factory that cannot be
        imported or does not return a module.
    """
    device = torch.device(device)
    path = Path(spec)
    if path.is_file():
        if _is_torchscript(path):
            return _load_torchscript(path, device)
        data = load_checkpoint(path, map_location="cpu")
        return _load_segdata_checkpoint(path, data, device)
    if path.exists():
        raise InputError(path, "not a file: --model takes a checkpoint, a TorchScript file or module:factory")
    text = str(spec)
    if _FACTORY.match(text) and not text.endswith((".pt", ".pth", ".ckpt")):
        return _load_factory(text, device)
    raise InputError(
        path, "model file not found", "--model takes a segdata checkpoint, a TorchScript file, or module:factory"
    )

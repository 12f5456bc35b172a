"""Checkpoints (save, load, validation) and load_model for its three kinds of spec."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest

torch = pytest.importorskip("torch")

from segdata.errors import InputError  # noqa: E402
from segdata.torch.checkpoint import (  # noqa: E402
    IMAGENET_NORMALIZE,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_torchscript,
)
from segdata.vocab import VocabEntry, Vocabulary  # noqa: E402

VOCAB = Vocabulary((VocabEntry(0, "road", (7,)), VocabEntry(1, "car", (26, 27))))
NORM = {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.6, 0.7]}


def _conv(k=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Conv2d(3, k, 1)


def test_checkpoint_round_trip(tmp_path):
    model = _conv()
    path = save_checkpoint(
        tmp_path / "checkpoint.pt",
        arch="conv",
        arch_args={"width": 4},
        num_classes=2,
        vocab=VOCAB,
        normalize=NORM,
        state_dict=model.state_dict(),
        optimizer={"state": {}, "param_groups": []},
        iter=120,
        seed=3,
        args={"lr": 0.01},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left
    data = load_checkpoint(path)
    assert data["format"] == "segdata-checkpoint" and data["format_version"] == 1
    assert (data["arch"], data["arch_args"], data["num_classes"], data["iter"], data["seed"]) == (
        "conv",
        {"width": 4},
        2,
        120,
        3,
    )
    assert Vocabulary.from_dict(data["vocab"]).names == ["road", "car"]
    assert data["normalize"] == NORM
    assert data["args"] == {"lr": 0.01}
    assert torch.equal(data["state_dict"]["weight"], model.weight)


def test_checkpoint_defaults_to_imagenet_normalisation(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", arch="conv", num_classes=2, state_dict={})
    assert load_checkpoint(path)["normalize"] == IMAGENET_NORMALIZE
    assert IMAGENET_NORMALIZE["mean"] == [0.485, 0.456, 0.406]


def test_a_checkpoint_with_numpy_rng_state_loads(tmp_path):
    import numpy as np

    rng = {"numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    path = save_checkpoint(tmp_path / "c.pt", arch="conv", num_classes=2, state_dict={}, rng=rng)
    assert load_checkpoint(path)["rng"]["numpy"][0] == "MT19937"


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"not a torch file at all", "not a readable torch checkpoint"),
        ({"weight": 1}, "not a segdata checkpoint"),
        ({"format": "other"}, "format is 'other'"),
        ({"format": "segdata-checkpoint", "format_version": 9}, "format version 9"),
        (
            {"format": "segdata-checkpoint", "format_version": 1, "arch": "x"},
            "lacks arch_args, num_classes, state_dict",
        ),
        (
            {
                "format": "segdata-checkpoint",
                "format_version": 1,
                "arch": "x",
                "num_classes": 2,
                "state_dict": {},
                "arch_args": [1],
            },
            "'arch_args' a dict",
        ),
        (
            {
                "format": "segdata-checkpoint",
                "format_version": 1,
                "arch": "x",
                "arch_args": {},
                "num_classes": 3,
                "state_dict": {},
                "vocab": VOCAB.to_dict(),
            },
            "vocabulary has 2 classes, num_classes is 3",
        ),
    ],
)
def test_a_wrong_file_is_an_input_error_naming_it(tmp_path, content, problem):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError, match=problem) as info:
        load_checkpoint(path)
    assert info.value.path == str(path)
    with pytest.raises(InputError, match=problem):
        load_model(path)


def test_a_missing_spec_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="model file not found") as info:
        load_model(tmp_path / "nope.pt")
    assert info.value.path == str(tmp_path / "nope.pt")
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(InputError, match="not a file"):
        load_model(tmp_path)


# --------------------------------------------------------------------------- segdata checkpoints


def test_load_model_rebuilds_a_segdata_checkpoint(tmp_path, monkeypatch):
    """Through ``segdata.torch.models.build`` (a stand-in here: the architecture is not the point)."""
    built = []

    def build(arch, num_classes, **arch_args):
        built.append((arch, num_classes, arch_args))
        return torch.nn.Conv2d(3, num_classes, arch_args.get("kernel", 1))

    monkeypatch.setitem(sys.modules, "segdata.torch.models", types.SimpleNamespace(build=build))
    model = _conv()
    model.train()
    ddp_state = {f"module.{k}": v for k, v in model.state_dict().items()}  # as saved from DDP
    path = save_checkpoint(
        tmp_path / "c.pt", arch="net", num_classes=2, vocab=VOCAB, normalize=NORM, state_dict=ddp_state
    )
    loaded, normalize, vocab = load_model(path)
    assert built == [("net", 2, {})]
    assert not loaded.training
    assert normalize == NORM
    assert vocab.names == ["road", "car"]
    x = torch.randn(1, 3, 4, 5)
    torch.testing.assert_close(loaded(x), model(x))
    # weights of another shape: an error naming the file
    path = save_checkpoint(tmp_path / "k3.pt", arch="net", arch_args={"kernel": 3}, num_classes=2, state_dict=ddp_state)
    with pytest.raises(InputError, match="weights do not fit net") as info:
        load_model(path)
    assert info.value.path == str(path)


def test_load_model_with_the_project_models(tmp_path):
    models = pytest.importorskip("segdata.torch.models")
    torch.manual_seed(0)
    net = models.build("deeplab-small", 5).eval()
    path = save_checkpoint(tmp_path / "c.pt", arch="deeplab-small", num_classes=5, state_dict=net.state_dict())
    loaded, normalize, vocab = load_model(path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    assert vocab is None and normalize == IMAGENET_NORMALIZE


# --------------------------------------------------------------------------- TorchScript


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script and save, called here
def test_load_model_reads_torchscript_with_and_without_metadata(tmp_path):
    model = _conv(seed=2).eval()
    x = torch.randn(1, 3, 6, 7)
    path = save_torchscript(model, tmp_path / "m.ts", normalize=NORM, vocab=VOCAB)
    loaded, normalize, vocab = load_model(path)
    assert isinstance(loaded, torch.jit.ScriptModule)
    torch.testing.assert_close(loaded(x), model(x))
    assert normalize == NORM
    assert vocab.names == ["road", "car"]
    plain = tmp_path / "plain.pt"  # a .pt name: told apart from a checkpoint by its contents
    torch.jit.save(torch.jit.script(model), str(plain))
    loaded, normalize, vocab = load_model(plain)
    torch.testing.assert_close(loaded(x), model(x))
    assert normalize == IMAGENET_NORMALIZE and vocab is None


# --------------------------------------------------------------------------- module:factory

FACTORIES = textwrap.dedent(
    '''
    import torch

    def from_docstring():
        """A 1x1 conv.

        segdata_normalize = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
        """
        torch.manual_seed(0)
        return torch.nn.Conv2d(3, 2, 1)

    def from_attribute():
        torch.manual_seed(0)
        return torch.nn.Conv2d(3, 2, 1)

    from_attribute.segdata_normalize = {"mean": [0, 0, 0], "std": [1, 1, 1]}
    from_attribute.segdata_vocab = {"classes": [{"train_id": 0, "name": "x", "class_ids": [1]},
                                                {"train_id": 1, "name": "y", "class_ids": [2]}]}

    def plain():
        return torch.nn.Conv2d(3, 2, 1)

    def not_a_model():
        return 42

    def broken():
        raise RuntimeError("no weights here")
    '''
)


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "my_factories.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_factories", None)


def test_load_model_calls_a_factory(factories):
    model, normalize, vocab = load_model("my_factories:from_docstring")
    assert isinstance(model, torch.nn.Conv2d) and not model.training
    assert normalize == {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    assert vocab is None
    model, normalize, vocab = load_model("my_factories:from_attribute")
    assert normalize == {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    assert vocab.names == ["x", "y"]
    _, normalize, _ = load_model("my_factories:plain")
    assert normalize == IMAGENET_NORMALIZE
    # a file path instead of a module name
    model, normalize, _ = load_model(f"{factories / 'my_factories.py'}:from_docstring")
    assert normalize["std"] == [0.25, 0.25, 0.25]


@pytest.mark.parametrize(
    "spec,problem",
    [
        ("my_factories:not_a_model", "returned a int, not a torch.nn.Module"),
        ("my_factories:broken", "the factory failed .*no weights here"),
        ("my_factories:missing", "has no attribute missing"),
        ("no_such_module_xyz:build", "cannot import no_such_module_xyz"),
    ],
)
def test_a_bad_factory_is_an_input_error(factories, spec, problem):
    with pytest.raises(InputError, match=problem) as info:
        load_model(spec)
    assert info.value.path == spec

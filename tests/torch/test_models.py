"""The networks of segdata.torch.models: shapes, sizes, names."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from segdata.torch.models import ARCHITECTURES, available_architectures, build, count_parameters  # noqa: E402


@pytest.mark.parametrize(
    ("arch", "args"),
    [
        ("deeplab-small", {"width": 8, "aspp_channels": 16}),
        ("deeplab-small", {"width": 8, "aspp_channels": 16, "output_stride": 16}),
        ("unet-small", {"base": 4}),
    ],
)
@pytest.mark.parametrize("size", [(33, 47), (64, 64), (7, 5)])
def test_logits_at_input_resolution(arch, args, size):
    model = build(arch, 5, **args).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, *size))
    assert out.shape == (2, 5, *size)


def test_default_sizes_as_documented():
    # deeplab-small ~1.2M, unet-small 1-2M parameters (the module docstring)
    assert 1.0e6 < count_parameters(build("deeplab-small", 150)) < 1.4e6
    assert 1.0e6 < count_parameters(build("unet-small", 150)) < 2.0e6


def test_output_stride_16_has_coarser_features():
    model = build("deeplab-small", 3, width=8, aspp_channels=8, output_stride=16)
    features = model.layer4(model.layer3(model.layer2(model.layer1(model.stem(torch.zeros(1, 3, 64, 64))))))
    assert features.shape[2:] == (4, 4)
    model = build("deeplab-small", 3, width=8, aspp_channels=8)
    features = model.layer4(model.layer3(model.layer2(model.layer1(model.stem(torch.zeros(1, 3, 64, 64))))))
    assert features.shape[2:] == (8, 8)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build("unet-small", 4, base=4).state_dict()
    torch.manual_seed(3)
    b = build("unet-small", 4, base=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_names_and_arguments():
    assert set(ARCHITECTURES) <= set(available_architectures())
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*deeplab-small"):
        build("resnet9", 3)
    with pytest.raises(ValueError, match="depth"):
        build("unet-small", 3, depth=7)
    with pytest.raises(ValueError, match="output_stride"):
        build("deeplab-small", 3, output_stride=4)

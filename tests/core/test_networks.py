"""Networks: the registry, shapes for every supported input, and the module-order parameter layout."""

from __future__ import annotations

import pytest
import torch

from pad_sdk.core.networks import available_networks, create_network
from pad_sdk.core.params import ParamSpec, flatten_params, functional_forward, load_flat_params
from pad_sdk.errors import ConfigError


@pytest.mark.parametrize("name", available_networks())
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32), (3, 28), (1, 32)])
def test_every_network_classifies_and_embeds(name: str, channels: int, size: int) -> None:
    depth = {"depth": 2} if name == "convnet" and size == 8 else {}
    net = create_network(name, in_channels=channels, num_classes=7, image_size=(size, size), **depth)
    x = torch.randn(3, channels, size, size)
    assert net(x).shape == (3, 7)
    assert net.embed(x).shape[0] == 3


def test_convnet_28px_single_channel_matches_the_reference_layout() -> None:
    # The reference pads the first conv by 3 for 28x28 grey images: maps 32 -> 16 -> 8 -> 4, fc 2048 -> 10,
    # and ConvNet-D3 has 317,706 parameters (PAD_SPEC 2.4).
    net = create_network("convnet", in_channels=1, num_classes=10, image_size=(28, 28))
    assert net.classifier.in_features == 128 * 4 * 4
    assert ParamSpec.of(net).numel == 317_706


def test_unknown_network_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="convnet") as info:
        create_network("vgg99", in_channels=1, num_classes=2, image_size=(8, 8))
    assert info.value.field == "network.name"


def test_too_deep_for_the_image_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="too small"):
        create_network("convnet", in_channels=1, num_classes=2, image_size=(8, 8), depth=4)


def test_flat_parameters_are_in_module_order_and_round_trip() -> None:
    net = create_network("convnet", in_channels=1, num_classes=3, image_size=(8, 8), depth=2, width=4)
    spec = ParamSpec.of(net)
    assert spec.names[0] == "features.0.weight" and spec.names[-1] == "classifier.bias"
    flat = flatten_params(net)
    assert flat.shape == (spec.numel,)
    # layer boundaries: conv1 (w+b), norm1 (w+b), conv2, norm2, classifier -> 5 layers + end
    assert len(spec.layer_boundaries()) == 6
    other = create_network("convnet", in_channels=1, num_classes=3, image_size=(8, 8), depth=2, width=4)
    load_flat_params(other, flat)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(other(x), net(x))
    assert torch.allclose(functional_forward(other, spec, flat, x), net(x))


def test_flatten_is_a_copy_not_a_view_of_the_live_weights() -> None:
    # The official buffer script's `.cpu()` aliases on a CPU: every snapshot became the final weights.
    net = create_network("mlp", in_channels=1, num_classes=2, image_size=(4, 4))
    snapshot = flatten_params(net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert not torch.allclose(snapshot, flatten_params(net))

"""The (deep-only) DM loss against a loop-based reference."""

from __future__ import annotations

import pytest
import torch

from pad_sdk.core.distribution_matching import block_features, dm_loss, kept_blocks
from pad_sdk.core.networks import create_network
from pad_sdk.core.seeding import seeded


def _net(depth: int) -> torch.nn.Module:
    return seeded(0, lambda: create_network("convnet", in_channels=1, num_classes=3, image_size=(8, 8),
                                            width=4, depth=depth)).double()


def _reference(net: torch.nn.Module, real: list[torch.Tensor], syn: list[torch.Tensor], blocks: list[int]) -> float:
    """Run each image alone through the layers, collect each block's output before the next conv, average
    by summing one image at a time, and add the squared differences coordinate by coordinate."""
    def per_image_blocks(x: torch.Tensor) -> list[torch.Tensor]:
        outs, h = [], x.unsqueeze(0)
        for i, layer in enumerate(net.features):
            if isinstance(layer, torch.nn.Conv2d) and i > 0:
                outs.append(h.reshape(-1))
            h = layer(h)
        outs.append(h.reshape(-1))
        return outs

    total = 0.0
    with torch.no_grad():
        for real_c, syn_c in zip(real, syn, strict=True):
            for b in blocks:
                mean_r = sum(per_image_blocks(x)[b] for x in real_c) / len(real_c)
                mean_s = sum(per_image_blocks(x)[b] for x in syn_c) / len(syn_c)
                total += sum(float(d) ** 2 for d in (mean_r - mean_s))
    return total


@pytest.mark.parametrize("depth,alpha", [(2, 0.0), (2, 0.25), (3, 0.0), (3, 0.25), (3, 0.5)])
def test_dm_loss_equals_loop_reference(depth: int, alpha: float) -> None:
    net = _net(depth)
    g = torch.Generator().manual_seed(1)
    real = [torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    syn = [torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    blocks = list(kept_blocks(depth, alpha))
    got = float(dm_loss(net, real, syn, blocks).detach())
    assert got == pytest.approx(_reference(net, real, syn, blocks), rel=1e-9)


def test_kept_blocks_drop_the_first_alpha_of_the_blocks_but_never_the_last() -> None:
    assert list(kept_blocks(2, 0.0)) == [0, 1]
    assert list(kept_blocks(2, 0.25)) == [1]  # ceil(0.5) = 1 block dropped
    assert list(kept_blocks(3, 0.25)) == [1, 2]
    assert list(kept_blocks(3, 0.5)) == [2]
    assert list(kept_blocks(3, 0.75)) == [2]  # at least the last block stays


def test_the_last_block_is_the_embedding_published_dm_matches() -> None:
    net = _net(2)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    features = block_features(net, x)
    assert len(features) == 2
    torch.testing.assert_close(features[-1], net.embed(x))

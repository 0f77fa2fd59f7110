"""Tests for pad_sdk.core.zca: Kornia-equivalent ZCA whitening, streaming fit, serialisation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from pad_sdk.core import zca as zca_module
from pad_sdk.core.zca import ZCAWhitening
from pad_sdk.errors import DataError

EPS = 0.1


def _correlated_images(n: int = 400, shape: tuple[int, int, int] = (3, 6, 6), seed: int = 0) -> torch.Tensor:
    """(n, *shape) float32 images in roughly [0, 1] with strongly correlated pixels and a wide spectrum."""
    g = torch.Generator().manual_seed(seed)
    d = shape[0] * shape[1] * shape[2]
    latent = torch.rand(n, d, generator=g, dtype=torch.float64)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    # Column scales spread the eigenvalues over several orders of magnitude around eps.
    scales = torch.logspace(-2, 0.5, d, dtype=torch.float64)
    flat = 0.5 + latent @ (mixing * scales)
    return flat.reshape(n, *shape).float()


def _reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loop-free float64 reference: covariance, Kornia's SVD-based W, and the expected whitened covariance."""
    flat = x.reshape(x.shape[0], -1).double()
    cov = torch.cov(flat.T)  # unbiased, like Kornia
    u, s, _ = torch.linalg.svd(cov)
    w = u @ torch.diag((s + EPS).rsqrt()) @ u.T
    whitened_cov = u @ torch.diag(s / (s + EPS)) @ u.T
    return cov, w, whitened_cov


def test_transformed_covariance_is_eps_regularised_identity() -> None:
    x = _correlated_images()
    zca = ZCAWhitening.fit(x, eps=EPS)
    cov, w, whitened_cov = _reference(x)
    assert torch.allclose(zca.transform_matrix.double(), w, atol=1e-5)
    assert torch.allclose(zca.mean.double(), x.reshape(len(x), -1).double().mean(0), atol=1e-6)
    z = zca.transform(x)
    assert z.shape == x.shape and z.dtype == torch.float32
    measured = torch.cov(z.reshape(len(z), -1).double().T)
    assert torch.allclose(measured, whitened_cov, atol=1e-4)
    # The test can fail: the data is far from white before the transform, and eps visibly matters.
    assert not torch.allclose(cov, whitened_cov, atol=1e-2)
    assert (torch.linalg.eigvalsh(measured).min() < 0.5) and (torch.linalg.eigvalsh(measured).max() > 0.9)


def test_inverse_undoes_transform() -> None:
    x = _correlated_images()
    zca = ZCAWhitening.fit(x)
    assert torch.allclose(zca.inverse(zca.transform(x)), x, atol=1e-4)
    assert torch.allclose(
        zca.transform_matrix.double() @ zca.inverse_matrix.double(), torch.eye(108).double(), atol=1e-4
    )
    # Held-out images, float64 input: output keeps the caller's dtype.
    held_out = _correlated_images(n=10, seed=1).double()
    assert zca.transform(held_out).dtype == torch.float64
    assert torch.allclose(zca.inverse(zca.transform(held_out)), held_out, atol=1e-4)


def test_streaming_fit_equals_one_shot_fit() -> None:
    x = _correlated_images(n=300)
    # Shift one stretch far from the rest, so the merge's between-batch mean term (delta delta^T) matters.
    x[100:150] += 50.0
    one_shot = ZCAWhitening.fit(x)

    def batches() -> Iterator[torch.Tensor]:  # a one-pass iterator, not a list, with uneven sizes
        yield from x.split(37)

    streamed = ZCAWhitening.fit(batches())
    for key, value in one_shot.state_dict().items():
        assert torch.allclose(streamed.state_dict()[key], value, atol=1e-5, rtol=1e-6), key
    _, w, _ = _reference(x)
    assert torch.allclose(streamed.transform_matrix.double(), w, atol=1e-5)


def test_state_dict_round_trip() -> None:
    x = _correlated_images(n=100)
    zca = ZCAWhitening.fit(x)
    state = zca.state_dict()
    assert set(state) == {"mean", "transform_matrix", "inverse_matrix"}
    assert all(v.dtype == torch.float32 for v in state.values())
    restored = ZCAWhitening.from_state_dict(state)
    assert torch.equal(restored.transform(x), zca.transform(x))
    assert torch.equal(restored.inverse_matrix, zca.inverse_matrix)
    with pytest.raises(DataError, match="missing"):
        ZCAWhitening.from_state_dict({"mean": state["mean"]})


def test_float32_eigendecomposition_path_matches_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    # Large D (CIFAR's 3072) decomposes in float32 for speed; exercise that path on a small D.
    x = _correlated_images()
    exact = ZCAWhitening.fit(x)
    monkeypatch.setattr(zca_module, "_FLOAT64_EIGH_MAX_FEATURES", 0)
    fast = ZCAWhitening.fit(x)
    assert torch.allclose(fast.transform_matrix, exact.transform_matrix, atol=1e-4)
    assert torch.allclose(fast.inverse(fast.transform(x)), x, atol=1e-4)


def test_bad_inputs_are_rejected() -> None:
    x = _correlated_images(n=20)
    with pytest.raises(DataError, match="at least 2"):
        ZCAWhitening.fit(x[:1])
    with pytest.raises(DataError, match="at least 2"):
        ZCAWhitening.fit([])
    with pytest.raises(DataError, match="disagree"):
        ZCAWhitening.fit([x, torch.rand(4, 1, 6, 6)])
    zca = ZCAWhitening.fit(x)
    with pytest.raises(DataError, match="108 features"):
        zca.transform(torch.rand(2, 3, 5, 5))

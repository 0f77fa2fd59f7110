"""ZCA whitening of flattened images, equivalent to Kornia's ``ZCAWhitening(eps=0.1, compute_inv=True)``.

DATM and PAD fit it on the raw [0, 1] training tensors and distil in the whitened space (PAD_SPEC 1(d)).
With X the ``(N, D)`` flattened images, m their mean and ``cov = (X - m)^T (X - m) / (N - 1) = U S U^T``:

    W     = U diag(1 / sqrt(S + eps)) U^T      transform(x) = (x - m) W
    W^-1  = U diag(sqrt(S + eps)) U^T          inverse(z)   = z W^-1 + m

The eps regulariser (0.1, not Kornia's 1e-6 default) keeps low-variance directions from being blown up,
so whitened data has covariance U diag(S / (S + eps)) U^T rather than the identity.

Kornia computes everything in the input dtype (float32) with an SVD. Here the statistics run in float64
(the eigendecomposition too, up to D = 1024; see :func:`_eigh`) and the result is stored in float32. For
a symmetric PSD matrix the eigendecomposition gives the same U and S as the SVD, at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from pad_sdk.errors import DataError

__all__ = ["ZCAWhitening"]

_KEYS = ("mean", "transform_matrix", "inverse_matrix")
# Largest D whose eigendecomposition runs in float64 (28x28 MNIST is 784; 3x32x32 CIFAR is 3072).
_FLOAT64_EIGH_MAX_FEATURES = 1024


@dataclass(frozen=True)
class ZCAWhitening:
    """A fitted ZCA transform on images flattened to ``D = C * H * W`` features.

    Attributes:
        mean: ``(D,)`` float32 feature mean of the fitting data.
        transform_matrix: ``(D, D)`` float32 symmetric whitening matrix W.
        inverse_matrix: ``(D, D)`` float32 symmetric W^-1.
    """

    mean: torch.Tensor
    transform_matrix: torch.Tensor
    inverse_matrix: torch.Tensor

    def __post_init__(self) -> None:
        d = self.mean.shape[0] if self.mean.ndim == 1 else -1
        for name in ("transform_matrix", "inverse_matrix"):
            shape = tuple(getattr(self, name).shape)
            if shape != (d, d):
                raise DataError(
                    f"ZCA {name} must be (D, D) for a mean of shape (D,); got {shape} "
                    f"and mean {tuple(self.mean.shape)}",
                    field=name,
                )

    @property
    def num_features(self) -> int:
        """D, the flattened image size this transform applies to."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, x: torch.Tensor | Iterable[torch.Tensor], eps: float = 0.1) -> ZCAWhitening:
        """Fit on images, in one tensor or streamed as batches.

        Args:
            x: ``(N, C, H, W)`` images, or an iterable of ``(N_i, C, H, W)`` batches (e.g. a DataLoader's
                image tensors), so the data never needs to be in memory at once. Memory is O(D^2).
            eps: regulariser added to the eigenvalues (0.1 in DATM/PAD).

        Returns:
            The fitted transform; batches give the same result as one tensor up to float64 rounding.
        """
        if not eps > 0.0:
            raise DataError(f"ZCA eps must be > 0, got {eps}", field="eps")
        batches = [x] if isinstance(x, torch.Tensor) else x
        count, mean, scatter = _streaming_scatter(batches)
        if count < 2:
            raise DataError(f"ZCA needs at least 2 images to estimate a covariance, got {count}", field="x")
        cov = scatter / (count - 1)  # unbiased, as Kornia's zca_mean(unbiased=True)
        eigenvalues, eigenvectors = _eigh(cov)
        # cov is PSD; rounding can leave eigenvalues of (numerically) zero directions slightly negative.
        eigenvalues = eigenvalues.clamp_min(0.0) + eps
        transform = (eigenvectors * eigenvalues.rsqrt()) @ eigenvectors.T
        inverse = (eigenvectors * eigenvalues.sqrt()) @ eigenvectors.T
        return cls(mean=mean.float(), transform_matrix=transform.float(), inverse_matrix=inverse.float())

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten images: ``(N, C, H, W) -> (N, C, H, W)``, in x's dtype and device."""
        flat = self._flatten(x)
        mean, matrix = self._on(x, self.mean), self._on(x, self.transform_matrix)
        return ((flat - mean) @ matrix).reshape(x.shape)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`transform`: ``(N, C, H, W) -> (N, C, H, W)``, in x's dtype and device."""
        flat = self._flatten(x)
        mean, matrix = self._on(x, self.mean), self._on(x, self.inverse_matrix)
        return (flat @ matrix + mean).reshape(x.shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The three tensors, for safetensors/torch.save (detached, contiguous copies)."""
        return {key: getattr(self, key).detach().contiguous().clone() for key in _KEYS}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> ZCAWhitening:
        """Rebuild from :meth:`state_dict` output; raises DataError on missing keys or bad shapes."""
        missing = [key for key in _KEYS if key not in state]
        if missing:
            raise DataError(f"ZCA state is missing {missing}; expected keys {list(_KEYS)}", field="state")
        return cls(**{key: state[key].float() for key in _KEYS})

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, ...) -> (N, D)``, checking D matches the fitted transform."""
        if x.ndim < 2 or x[0].numel() != self.num_features:
            raise DataError(
                f"ZCA was fitted on {self.num_features} features per image, got input of shape "
                f"{tuple(x.shape)}",
                field="x",
            )
        return x.reshape(x.shape[0], -1)

    @staticmethod
    def _on(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return value.to(device=x.device, dtype=x.dtype)


def _eigh(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``(D,)`` and eigenvectors ``(D, D)`` of a symmetric float64 matrix, returned in float64.

    Above ``_FLOAT64_EIGH_MAX_FEATURES`` the decomposition itself runs in float32: at D = 3072 a float64
    eigh takes ~4 s on 2 CPU cores against ~1.7 s in float32, and the float32 result changes W by about
    2e-6 relative (measured on image-like data), an error the final float32 storage is of the same order
    as. It is harmless because eps bounds the sensitivity of 1 / sqrt(S + eps) to eigenvalue errors. The
    covariance feeding it is still accumulated in float64, which is where the precision matters.
    """
    if cov.shape[0] <= _FLOAT64_EIGH_MAX_FEATURES:
        return torch.linalg.eigh(cov)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov.float())
    return eigenvalues.double(), eigenvectors.double()


def _streaming_scatter(batches: Iterable[torch.Tensor]) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Count, mean ``(D,)`` and centred scatter ``(D, D)`` = sum (x - mean)(x - mean)^T, in float64.

    Batches are merged with Chan et al.'s pairwise update, which centres each batch on its own mean
    before the Gram product: unlike accumulating X^T X and subtracting N m m^T at the end, it does not
    cancel catastrophically when the mean is large relative to the spread.
    """
    count, mean, scatter = 0, torch.zeros(0, dtype=torch.float64), torch.zeros(0, 0, dtype=torch.float64)
    for batch in batches:
        # Statistics stay on the first batch's device (a GPU makes the D x D Gram products cheap).
        device = mean.device if count else batch.device
        flat = batch.detach().reshape(batch.shape[0], -1).to(device=device, dtype=torch.float64)
        n = flat.shape[0]
        if n == 0:
            continue
        if count and flat.shape[1] != mean.shape[0]:
            raise DataError(
                f"ZCA batches disagree on the image size: {mean.shape[0]} then {flat.shape[1]} features",
                field="x",
            )
        batch_mean = flat.mean(dim=0)
        centred = flat - batch_mean
        batch_scatter = centred.T @ centred
        if count == 0:
            count, mean, scatter = n, batch_mean, batch_scatter
            continue
        delta = batch_mean - mean
        total = count + n
        # In place: the D x D float64 accumulators dominate memory (75 MB each at D = 3072).
        scatter += batch_scatter
        scatter.addr_(delta, delta, alpha=count * n / total)
        mean = mean + delta * (n / total)
        count = total
    return count, mean, scatter

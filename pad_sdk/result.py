"""What a run returns: the condensed set (a torch ``Dataset`` too), its accuracy, and how it was made."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

import connectors
from pad_sdk.config import PadConfig
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.core.synthetic import SyntheticSet, hard_label_set
from pad_sdk.data import Normalisation
from pad_sdk.errors import ConfigError, translated_errors


class CondensedDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The condensed set as a torch ``Dataset`` of (image (C, H, W), target) pairs.

    With ``soft=True`` the target is the learned label distribution (K,) (train with soft cross-entropy,
    as the evaluation protocol does); otherwise it is the class id ().
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, label_logits: torch.Tensor | None,
                 *, soft: bool = True) -> None:
        self.images = images
        self.targets = F.softmax(label_logits, dim=1) if soft and label_logits is not None else labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]


@dataclass(frozen=True)
class CondensedSet:
    """A condensed dataset: images (S, C, H, W) in the normalised input space of the networks, class ids
    (S,), learned label logits (S, K) or None, the learned step size, and the normalisation to apply to
    real images before feeding a network trained on it."""

    images: torch.Tensor
    labels: torch.Tensor
    label_logits: torch.Tensor | None
    learned_lr: float | None
    class_names: tuple[str, ...]
    normalisation: Normalisation
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ipc(self) -> int:
        return int(torch.bincount(self.labels).max())

    def dataset(self, *, soft: bool = True) -> CondensedDataset:
        return CondensedDataset(self.images, self.labels, self.label_logits, soft=soft)

    def as_synthetic(self, default_lr: float) -> SyntheticSet:
        """The set as the evaluation protocol trains on it: label logits (hard labels as the run's one-hot
        logits) and the learned step size (``default_lr`` when the export has none)."""
        lr = self.learned_lr if self.learned_lr is not None else default_lr
        if self.label_logits is None:
            return hard_label_set(self.images, self.labels, len(self.class_names), lr)
        return SyntheticSet(self.images, self.label_logits, torch.tensor(lr), self.labels)

    def save(self, uri: str, *, storage_options: Mapping[str, Any] | None = None, overwrite: bool = False,
             policy: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Export to ``uri`` (Parquet + preview + manifest, committed by the manifest written last)."""
        if not uri.strip() or not uri.strip().rstrip("/"):
            raise ConfigError(f"the export location must name a folder, got {uri!r}", field="uri", value=uri)
        metadata = {
            **dict(self.metadata),
            **dict(extra or {}),
            "normalisation": {"mean": list(self.normalisation.mean), "std": list(self.normalisation.std)},
        }
        with translated_errors():
            return connectors.write_condensed(
                uri,
                images=self.images.detach().cpu().numpy().astype(np.float32),
                labels=self.labels.cpu().numpy().astype(np.int64),
                class_names=list(self.class_names),
                soft_labels=None if self.label_logits is None else self.label_logits.detach().cpu().numpy(),
                learned_lr=self.learned_lr,
                source_uri=metadata.get("source", {}).get("uri"),
                source_fingerprint=metadata.get("source", {}).get("fingerprint"),
                policy=dict(policy) if policy else None,
                metadata=json.loads(json.dumps(metadata, default=str)),
                storage_options=storage_options,
                overwrite=overwrite,
            )


def load_condensed(uri: str, *, storage_options: Mapping[str, Any] | None = None) -> CondensedSet:
    """Read an export written by :meth:`CondensedSet.save`; refuses one whose manifest does not verify."""
    with translated_errors():
        export = connectors.read_condensed(uri, storage_options=storage_options, verify=True)
    metadata = dict(export.manifest.get("metadata") or {})
    norm = metadata.get("normalisation") or {}
    channels = int(export.images.shape[1])
    return CondensedSet(
        images=torch.from_numpy(np.array(export.images, dtype=np.float32)),
        labels=torch.from_numpy(np.array(export.labels, dtype=np.int64)),
        label_logits=None if export.soft_labels is None else torch.from_numpy(np.array(export.soft_labels)),
        learned_lr=export.learned_lr,
        class_names=tuple(export.class_names),
        normalisation=Normalisation(
            tuple(norm.get("mean", [0.0] * channels)), tuple(norm.get("std", [1.0] * channels))
        ),
        metadata=metadata,
    )


@dataclass(frozen=True)
class AccuracyReport:
    """Holdout accuracy of networks trained on the condensed set, a random real subset of equal size, and
    the full training data; fractions in [0, 1]."""

    condensed: EvalResult
    random: EvalResult | None
    full: EvalResult | None
    group_accuracy: dict[str, dict[str, float]] | None = None  # group value -> {"full"|"random"|"condensed": acc}
    cross_architecture: dict[str, EvalResult] | None = None  # network name -> condensed-set evaluation

    @property
    def retention(self) -> float | None:
        """Condensed mean accuracy relative to the full-data reference."""
        if self.full is None or self.full.mean == 0:
            return None
        return self.condensed.mean / self.full.mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "condensed": self.condensed.to_dict(),
            "random": None if self.random is None else self.random.to_dict(),
            "full": None if self.full is None else self.full.to_dict(),
            "retention": self.retention,
            "group_accuracy": self.group_accuracy,
            "cross_architecture": None if self.cross_architecture is None else {
                arch: result.to_dict() for arch, result in self.cross_architecture.items()},
        }


@dataclass(frozen=True)
class DistillResult:
    """Everything one run produced: the condensed set, its accuracy, the policy verdict, timings."""

    condensed: CondensedSet
    config: PadConfig
    accuracy: AccuracyReport | None
    verdict: Any | None  # policies.Verdict
    timings: Mapping[str, float]
    loss_history: tuple[float, ...]
    source: Mapping[str, Any]
    policy: Mapping[str, Any] | None = None
    measurements: Mapping[str, Any] = field(default_factory=dict)  # the measured results a policy judges
    decisions: Mapping[str, Any] = field(default_factory=dict)  # settings chosen during the run, with reasons
    estimate: Mapping[str, Any] | None = None  # the run's opening estimate (``pad_sdk.plans.Plan`` as a dict)

    @property
    def partial(self) -> bool:
        """True when the budget stopped the run before this result was complete (see :attr:`not_done`)."""
        return "budget_stop" in self.decisions

    @property
    def not_done(self) -> tuple[str, ...]:
        """The stages a budget stop left undone (empty for a complete run)."""
        return tuple(self.decisions.get("budget_stop", {}).get("not_done", ()))

    # conveniences for the common case
    @property
    def images(self) -> torch.Tensor:
        return self.condensed.images

    @property
    def labels(self) -> torch.Tensor:
        return self.condensed.labels

    @property
    def soft_labels(self) -> torch.Tensor | None:
        return self.condensed.label_logits

    @property
    def learned_lr(self) -> float | None:
        return self.condensed.learned_lr

    def dataset(self, *, soft: bool = True) -> CondensedDataset:
        return self.condensed.dataset(soft=soft)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: settings, accuracy, verdict, timings, source facts."""
        return {
            "ipc": self.config.ipc,
            "preset": self.config.preset,
            "images": int(self.images.shape[0]),
            "learned_lr": self.learned_lr,
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "verdict": None if self.verdict is None else self.verdict.model_dump(mode="json"),
            "timings": dict(self.timings),
            "decisions": dict(self.decisions),
            "estimate": None if self.estimate is None else dict(self.estimate),
            "source": dict(self.source),
            "config": self.config.model_dump(mode="json"),
        }

    def save(self, uri: str, *, storage_options: Mapping[str, Any] | None = None,
             overwrite: bool = False) -> dict[str, Any]:
        """Export the condensed set with this run's accuracy, verdict and settings in its manifest."""
        return self.condensed.save(
            uri, storage_options=storage_options, overwrite=overwrite, policy=self.policy,
            extra={"run": self.summary()},
        )

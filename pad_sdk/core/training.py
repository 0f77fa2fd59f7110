"""Plain supervised training and measurement, shared by scoring agents, experts and evaluation networks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.images import Images, StoredImages, batches
from pad_sdk.core.matching import soft_cross_entropy
from pad_sdk.core.params import device_of


@dataclass(frozen=True)
class LabelledImages:
    """An in-memory labelled image set: images (N, C, H, W), labels (N,) int64 in [0, num_classes).

    ``images`` is a float32 tensor or :class:`StoredImages` (the source's uint8 pixels, converted a batch at a
    time): either way ``images[rows]`` is float32 network input.
    """

    images: Images
    labels: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def class_indices(self) -> list[torch.Tensor]:
        """Global indices of each class's examples, in data order."""
        return [torch.nonzero(self.labels == c, as_tuple=True)[0] for c in range(self.num_classes)]

    def subset(self, indices: torch.Tensor) -> LabelledImages:
        """The indexed examples (stored images stay stored)."""
        images = self.images.subset(indices) if isinstance(self.images, StoredImages) else self.images[indices]
        return LabelledImages(images, self.labels[indices], self.num_classes)

    def to(self, device: torch.device) -> LabelledImages:
        return LabelledImages(self.images.to(device), self.labels.to(device), self.num_classes)


@dataclass(frozen=True)
class TrainRecipe:
    """SGD settings of one training run. ``decay_at_half`` multiplies the lr by 0.1 at half the epochs."""

    epochs: int
    lr: float
    batch_size: int = 256
    momentum: float = 0.0
    weight_decay: float = 0.0
    decay_at_half: bool = False
    augment: bool = True


def minibatches(indices: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled minibatches of ``indices`` (a new permutation every call)."""
    order = indices[torch.randperm(indices.numel(), generator=generator)]
    yield from torch.split(order, batch_size)


def train_network(
    network: nn.Module,
    images: Images,
    targets: torch.Tensor,
    recipe: TrainRecipe,
    *,
    generator: torch.Generator,
    augment: DiffAugment | None = None,
    epoch_indices: Callable[[int], torch.Tensor] | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """Train ``network`` in place with SGD on ``images`` (N, C, H, W).

    ``targets`` are hard labels (N,) int64 or label logits (N, K) for soft cross-entropy.
    ``epoch_indices(e)`` chooses the examples of epoch e (PAD's data scheduler); default: all.
    ``on_epoch_end(e, network)`` is called after every epoch (experts snapshot their parameters there).
    Data may live anywhere: each minibatch moves to the network's device (a no-op when it is already there).
    """
    optimizer = torch.optim.SGD(
        network.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    soft = targets.dim() == 2
    device = device_of(network)
    everything = torch.arange(images.shape[0])
    network.train()
    for epoch in range(recipe.epochs):
        if recipe.decay_at_half and epoch == recipe.epochs // 2:
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * 0.1
        indices = epoch_indices(epoch) if epoch_indices is not None else everything
        for batch in minibatches(indices.cpu(), recipe.batch_size, generator):
            x = images[batch].to(device, non_blocking=True)
            y = targets[batch].to(device, non_blocking=True)
            if augment is not None and recipe.augment:
                x = augment(x, generator=generator)
            logits = network(x)
            loss = soft_cross_entropy(logits, y) if soft else F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch, network)
    return network


@torch.no_grad()
def predict_logits(network: nn.Module, images: Images, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, K) of ``network`` in eval mode, on the network's device (each chunk is moved there)."""
    device = device_of(network)
    network.eval()
    outputs = [network(chunk.to(device, non_blocking=True)) for chunk in batches(images, batch_size)]
    network.train()
    return torch.cat(outputs)


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy in [0, 1] and recall per class (K,)."""

    accuracy: float
    per_class_recall: tuple[float, ...]


def measure_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Accuracy:
    """Accuracy and per-class recall of logits (N, K) against labels (N,)."""
    correct = logits.argmax(dim=1) == labels
    recall = []
    for c in range(num_classes):
        mask = labels == c
        recall.append(float(correct[mask].float().mean()) if mask.any() else float("nan"))
    return Accuracy(float(correct.float().mean()), tuple(recall))

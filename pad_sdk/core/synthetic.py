"""The condensed set trajectory matching learns, and where it starts: real images picked per class (correctly
classified by an expert, random, or by herding), with hard labels or the experts' soft ones (DATM/PAD's
initialisation). :mod:`pad_sdk.core.distill` then optimises it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from pad_sdk.core.coresets import embed, per_class
from pad_sdk.core.images import Images, batches
from pad_sdk.core.params import ParamSpec, functional_forward, load_flat_params
from pad_sdk.core.training import LabelledImages
from pad_sdk.errors import DataError

if TYPE_CHECKING:
    from pad_sdk.core.distill import DistillSettings

# Logit given to the true class when labels are hard: softmax of it is exactly one-hot in float32, so
# soft cross-entropy then equals plain cross-entropy.
HARD_LABEL_LOGIT = 1000.0


@dataclass
class SyntheticSet:
    """The learnable condensed set: images (S, C, H, W), label logits (S, K), step size () and classes (S,)."""

    images: torch.Tensor
    label_logits: torch.Tensor
    lr: torch.Tensor
    classes: torch.Tensor

    def detached(self) -> SyntheticSet:
        return SyntheticSet(
            self.images.detach().clone(), self.label_logits.detach().clone(), self.lr.detach().clone(),
            self.classes.clone(),
        )


def hard_label_set(images: torch.Tensor, classes: torch.Tensor, num_classes: int, lr: float) -> SyntheticSet:
    """A fixed set on the host: images (S, C, H, W), one-hot label logits (S, K) and a fixed step size."""
    classes = classes.cpu()
    logits = F.one_hot(classes, num_classes).float() * HARD_LABEL_LOGIT
    return SyntheticSet(images.detach().cpu(), logits, torch.tensor(float(lr)), classes)


def initialise_synthetic(
    data: LabelledImages,
    ipc: int,
    *,
    network: nn.Module,
    spec: ParamSpec,
    final_params: Sequence[torch.Tensor],
    settings: DistillSettings,
    generator: torch.Generator,
) -> SyntheticSet:
    """Pick the starting images and label logits.

    ``correct`` (DATM/PAD default): per class, scan a random permutation and keep the first ``ipc`` real
    images that an expert's final checkpoint classifies correctly (switching expert if a class runs out).
    ``real``: the first ``ipc`` of the permutation. ``herding``: per class, herding (Welling) on the
    embeddings of the first expert's final checkpoint, as the herding baseline picks them (deterministic).
    Label logits start as the mean final-expert logits over the experts that classify the image correctly.
    """
    counts = [int((data.labels == c).sum()) for c in range(data.num_classes)]
    short = [c for c, n in enumerate(counts) if n < ipc and settings.pix_init != "noise"]
    if short:
        raise DataError(
            f"ipc={ipc} needs {ipc} real images per class, but classes {short} have only "
            f"{[counts[c] for c in short]}; lower the IPC"
        )
    chosen: list[torch.Tensor] = []
    herding = settings.pix_init == "herding"
    if herding:
        chosen = [herding_rows(data, ipc, network, final_params[0])]
    for c in range(0 if herding else data.num_classes):  # the other starts pick per class
        members = torch.nonzero(data.labels == c, as_tuple=True)[0]
        members = members[torch.randperm(members.numel(), generator=generator)]
        if settings.pix_init == "correct":
            chosen.append(_first_correct(data, members, c, ipc, network, spec, final_params))
        else:
            chosen.append(members[:ipc])
    indices = torch.cat(chosen)
    classes = data.labels[indices].clone()
    if settings.pix_init == "noise":
        images = torch.randn(indices.numel(), *data.image_shape, generator=generator)
    else:
        images = data.images[indices].detach().clone().cpu()

    if settings.soft_labels and settings.pix_init != "noise":
        label_logits = initial_label_logits(images, classes, network, spec, final_params, settings.pix_init)
    else:
        label_logits = F.one_hot(classes, data.num_classes).float() * (
            HARD_LABEL_LOGIT if not settings.soft_labels else 10.0
        )
    return SyntheticSet(images, label_logits, torch.tensor(settings.lr_init), classes)


def herding_rows(data: LabelledImages, ipc: int, network: nn.Module, params: torch.Tensor) -> torch.Tensor:
    """Global rows (K * ipc,) picked per class by herding on the embeddings of ``network`` with ``params`` (P,)."""
    agent = copy.deepcopy(network)  # the distiller's network keeps its own parameters
    load_flat_params(agent, params)
    return per_class(embed(agent, data.images), data.labels, data.num_classes, ipc, "herding")


def _logits_of(network: nn.Module, spec: ParamSpec, params: torch.Tensor, images: Images) -> torch.Tensor:
    """Logits (N, K) on the host of the network with ``params`` on ``images`` (N, C, H, W), held anywhere.

    Each chunk goes to the network's device (the data usually stays on the host while the network is on a
    GPU: the first GPU run crashed here)."""
    device = params.device
    with torch.no_grad():
        network.eval()
        out = torch.cat([functional_forward(network, spec, params, chunk.to(device)).cpu()
                         for chunk in batches(images, 256)])
        network.train()
    return out


def _first_correct(
    data: LabelledImages,
    members: torch.Tensor,
    label: int,
    ipc: int,
    network: nn.Module,
    spec: ParamSpec,
    final_params: Sequence[torch.Tensor],
) -> torch.Tensor:
    picked: list[int] = []
    for params in final_params:
        remaining = members[~torch.isin(members, torch.tensor(picked, dtype=torch.long))]
        for chunk in torch.split(remaining, 256):
            correct = _logits_of(network, spec, params, data.images[chunk]).argmax(1) == label
            picked.extend(chunk[correct].tolist()[: ipc - len(picked)])
            if len(picked) == ipc:
                return torch.tensor(picked, dtype=torch.long)
    # No expert gets enough of this class right: fill with the remaining real images (DATM would crash).
    rest = members[~torch.isin(members, torch.tensor(picked, dtype=torch.long))]
    return torch.cat([torch.tensor(picked, dtype=torch.long), rest[: ipc - len(picked)]])


def initial_label_logits(images: torch.Tensor, classes: torch.Tensor, network: nn.Module, spec: ParamSpec,
                         final_params: Sequence[torch.Tensor], pix_init: str) -> torch.Tensor:
    """Soft-label logits (S, K) of the initial images, as DATM/PAD make them: with correctly classified images
    the mean over the experts that get each image right; with random real images the first expert's logits,
    unfiltered (``buffer[0][-1]`` in the official code)."""
    if pix_init == "real":
        return _logits_of(network, spec, final_params[0], images)
    return _expert_label_logits(images, classes, network, spec, final_params)


def _expert_label_logits(
    images: torch.Tensor,
    classes: torch.Tensor,
    network: nn.Module,
    spec: ParamSpec,
    final_params: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Mean final-expert logits (S, K) over the experts that classify each image correctly (else expert 0's)."""
    logits = torch.stack([_logits_of(network, spec, params, images) for params in final_params])  # (X, S, K)
    right = (logits.argmax(2) == classes).float().unsqueeze(2)  # (X, S, 1)
    count = right.sum(0)
    return torch.where(count > 0, (logits * right).sum(0) / count.clamp_min(1), logits[0])

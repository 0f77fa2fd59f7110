"""Networks used as agents, experts, students and evaluators, chosen by name through one registry.

``create_network("convnet", in_channels=1, num_classes=10, image_size=(28, 28), width=128)`` builds the
ConvNet of the MTT/DATM/PAD papers. Every network exposes ``embed(x)`` (features before the classifier),
which distribution matching and herding use, and lists its parameters in module order, which is the order
trajectory matching flattens them in (shallow layers first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import torch
from torch import nn

from pad_sdk.errors import ConfigError

Norm = Literal["instance", "batch", "none"]
Pooling = Literal["avg", "max", "none"]


class Network(Protocol):
    """What the algorithm needs of a network: a classifier with an embedding."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...


NetworkFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, NetworkFactory] = {}


def register_network(name: str) -> Callable[[NetworkFactory], NetworkFactory]:
    """Register a network factory under ``name`` (a class or a function returning an ``nn.Module``)."""

    def decorator(factory: NetworkFactory) -> NetworkFactory:
        if name in _REGISTRY:
            raise ValueError(f"network {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_networks() -> tuple[str, ...]:
    """Names accepted by :func:`create_network`, sorted."""
    return tuple(sorted(_REGISTRY))


def create_network(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    **kwargs: object,
) -> nn.Module:
    """Build the network registered as ``name``; unknown names list the valid ones."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown network {name!r}; choose one of {', '.join(available_networks())}",
            field="network.name",
            value=name,
        ) from None
    return factory(in_channels=in_channels, num_classes=num_classes, image_size=tuple(image_size), **kwargs)


def _norm_layer(norm: Norm, channels: int) -> nn.Module:
    if norm == "instance":
        # Instance norm as GroupNorm with one group per channel and an affine transform, as in the
        # reference ConvNet: it has learnable parameters that trajectory matching compares.
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {norm!r}; choose instance, batch or none", field="network.norm", value=norm)


def _pool_layer(pooling: Pooling) -> nn.Module | None:
    if pooling == "avg":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if pooling == "max":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    if pooling == "none":
        return None
    raise ConfigError(
        f"unknown pooling {pooling!r}; choose avg, max or none", field="network.pooling", value=pooling
    )


@register_network("convnet")
class ConvNet(nn.Module):
    """ConvNet-D{depth}: ``depth`` blocks of [3x3 conv -> norm -> ReLU -> 2x2 pool], then a linear layer.

    For 28x28 single-channel inputs the first convolution pads by 3 (as the reference code does for
    MNIST-like data), so feature maps go 32 -> 16 -> 8 -> 4 and the classifier matches the 32x32 case.

    Shapes: ``forward`` (N, C, H, W) -> (N, num_classes); ``embed`` (N, C, H, W) -> (N, width * h * w).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 128,
        depth: int = 3,
        norm: Norm = "instance",
        pooling: Pooling = "avg",
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ConfigError("network depth and width must be at least 1", field="network.depth", value=depth)
        height, breadth = image_size
        layers: list[nn.Module] = []
        channels = in_channels
        for block in range(depth):
            padding = 3 if block == 0 and in_channels == 1 and (height, breadth) == (28, 28) else 1
            layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=padding))
            height, breadth = height + 2 * padding - 2, breadth + 2 * padding - 2
            layers.append(_norm_layer(norm, width))
            layers.append(nn.ReLU(inplace=True))
            pool = _pool_layer(pooling)
            if pool is not None:
                if min(height, breadth) < 2:
                    raise ConfigError(
                        f"image size {tuple(image_size)} is too small for a depth-{depth} ConvNet with pooling; "
                        "lower network.depth or set network.pooling to none",
                        field="network.depth",
                        value=depth,
                    )
                layers.append(pool)
                height, breadth = height // 2, breadth // 2
            channels = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * height * breadth
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm_layer(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.norm2 = _norm_layer(norm, out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), _norm_layer(norm, out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@register_network("resnet")
class ResNet(nn.Module):
    """A small ResNet (one basic block per stage, ``stages`` stages) for cross-architecture evaluation.

    Shapes: (N, C, H, W) -> (N, num_classes); global average pooling makes it size-agnostic.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 64,
        stages: int = 3,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        del image_size  # global pooling makes the network independent of the input size
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), _norm_layer(norm, width))
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(stages):
            out_channels = width * 2**stage
            blocks.append(_BasicBlock(channels, out_channels, stride=1 if stage == 0 else 2, norm=norm))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = channels
        self.classifier = nn.Linear(channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(torch.relu(self.stem(x)))
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register_network("mlp")
class MLP(nn.Module):
    """A fully connected network with ``depth`` hidden layers of ``width`` units and ReLU.

    Shapes: (N, C, H, W) -> (N, num_classes).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 128,
        depth: int = 2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_channels * image_size[0] * image_size[1]
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU(inplace=True)]
            features = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = features
        self.classifier = nn.Linear(features, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

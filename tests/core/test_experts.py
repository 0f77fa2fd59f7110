"""Experts trained together (``compute.experts_at_once``) follow the trajectories they follow alone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import torch

from pad_sdk.config import PadConfig
from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.experts import ExpertPlan, VectorisedExperts, train_expert, train_expert_group
from pad_sdk.core.networks import create_network
from pad_sdk.core.scheduler import DataSchedule
from pad_sdk.core.seeding import make_generator
from pad_sdk.core.training import LabelledImages, TrainRecipe
from pad_sdk.data import arrays_to_raw, prepare
from pad_sdk.demo import load_digits_arrays
from pad_sdk.errors import ConfigError
from pad_sdk.pipeline import Stages
from pad_sdk.presets import preset_config
from pad_sdk.trajectories import TrajectoryStore


def _data(n: int = 240) -> LabelledImages:
    g = make_generator(0)
    return LabelledImages(torch.randn(n, 1, 8, 8, generator=g), torch.arange(n) % 10, 10)


def _build(norm: str = "instance") -> Any:
    return lambda: create_network("convnet", in_channels=1, num_classes=10, image_size=(8, 8), width=8, depth=2,
                                  norm=norm)


def test_experts_trained_together_follow_their_own_trajectories() -> None:
    """PAD's scheduler (the pool grows over the epochs), DSA and momentum: what train_expert does alone."""
    data = _data()
    orders = tuple(torch.nonzero(data.labels == c, as_tuple=True)[0] for c in range(10))
    plan = ExpertPlan(schedule=DataSchedule(init_ratio=0.5, add_end=0.4), orders=orders)
    recipe = TrainRecipe(epochs=4, lr=0.05, batch_size=32, momentum=0.5)
    seeds = [11, 12, 13]
    epochs_seen: list[int] = []
    together = train_expert_group(data, _build(), recipe, plan, seeds=seeds, augment=DiffAugment(),
                                  on_epoch=epochs_seen.append)
    alone = [train_expert(data, _build(), recipe, plan, seed=s, augment=DiffAugment()) for s in seeds]
    assert epochs_seen == [0, 1, 2, 3]
    for grouped, single in zip(together, alone, strict=True):
        assert grouped.shape == single.shape == (5, single.shape[1])
        assert torch.equal(grouped[0], single[0])  # the same initialisation
        moved = (single[-1] - single[0]).abs().max()
        assert moved > 1e-2 and torch.allclose(grouped, single, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together[0][-1], together[1][-1])  # three experts, not one trained three times


def test_networks_that_cannot_be_stacked_are_refused_and_the_pipeline_trains_them_one_at_a_time() -> None:
    """Batch norm updates its buffers in place on every call and dropout draws per call: one vectorised step
    can do neither, so the pipeline falls back to one expert at a time (each stored as it ends)."""
    data, recipe = _data(120), TrainRecipe(epochs=2, lr=0.05, batch_size=32)
    with pytest.raises(ValueError, match="buffers or dropout"):
        train_expert_group(data, _build("batch"), recipe, ExpertPlan(), seeds=[1, 2])
    assert not VectorisedExperts.supports(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1)))
    assert VectorisedExperts.supports(_build()())
    images, labels, names = load_digits_arrays()
    raw = arrays_to_raw(images[:300], labels[:300], test_images=None, test_labels=None, class_names=names,
                        holdout_fraction=0.2, seed=0)
    stages = Stages(preset_config("tiny", 1, {"network": {"norm": "batch"}, "compute": {"experts_at_once": 2}}),
                    prepare(raw, zca=False))
    assert stages.experts_at_once() == 1
    experts = stages.train_experts(ExpertPlan())
    assert len(experts) == 2 and torch.equal(experts[0], stages.train_expert(0, ExpertPlan()))


def _config(at_once: int) -> PadConfig:
    return preset_config("tiny", 1, {"experts": {"num_experts": 4, "epochs": 4},
                                     "compute": {"experts_at_once": at_once}})


def test_the_pipeline_trains_missing_experts_in_groups_and_stores_each() -> None:
    images, labels, names = load_digits_arrays()
    raw = arrays_to_raw(images, labels, test_images=None, test_labels=None, class_names=names,
                        holdout_fraction=0.2, seed=0)
    data = prepare(raw, zca=False)
    reference = Stages(_config(1), data).train_experts(ExpertPlan())
    events: list[tuple[Any, ...]] = []
    stages = Stages(_config(3), data, on_event=lambda *args, **kwargs: events.append((*args, kwargs.get("epoch"))))
    store = TrajectoryStore(f"memory://experts-{uuid.uuid4().hex}")
    store.initialise(stages.expert_header())
    store.save(1, reference[1], seed=0)  # done by an earlier, interrupted run
    experts = stages.train_experts(ExpertPlan(), store)
    assert store.completed() == [0, 1, 2, 3]
    for index in range(4):
        assert torch.allclose(experts[index], reference[index], atol=1e-4, rtol=1e-4)  # float rounding only
    # one group of three (0, 2, 3): its epochs reported as they finish, then each expert as it is stored
    assert events == [("experts", 1, 4, None), *[("experts", 1, 4, e) for e in (1, 2, 3, 4)],
                      ("experts", 2, 4, None), ("experts", 3, 4, None), ("experts", 4, 4, None)]


def test_experts_at_once_is_validated() -> None:
    with pytest.raises(ConfigError, match="experts_at_once"):
        _config(0)

"""The distillation loop: one step on every image format, determinism, windows, threshold, checkpoints."""

from __future__ import annotations

import pytest
import torch

from pad_sdk.config import DistillSettings
from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.coresets import embed, per_class
from pad_sdk.core.distill import Distiller, start_epoch_bound
from pad_sdk.core.experts import ExpertPlan, train_expert
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec, load_flat_params
from pad_sdk.core.seeding import make_generator, seeded
from pad_sdk.core.synthetic import SyntheticSet, initialise_synthetic
from pad_sdk.core.training import LabelledImages, TrainRecipe


def _data(channels: int, size: int, per_class: int = 8, classes: int = 3) -> LabelledImages:
    g = make_generator(size * 10 + channels)
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.randn(labels.numel(), channels, size, size, generator=g) + labels.view(-1, 1, 1, 1).float()
    return LabelledImages(images, labels, classes)


def _build(data: LabelledImages):  # type: ignore[no-untyped-def]
    c, h, w = data.image_shape
    return lambda: create_network("convnet", in_channels=c, num_classes=data.num_classes, image_size=(h, w),
                                  width=8, depth=2 if h == 8 else 3)


def _settings(**changes: object) -> DistillSettings:
    base = dict(iterations=2, syn_steps=3, expert_epochs=1, min_start_epoch=0, current_max_start_epoch=1,
                max_start_epoch=2, expansion_end=4, lr_img=10.0, selection_ratio=0.5)
    return DistillSettings(**(base | changes))  # type: ignore[arg-type]


def _distiller(data: LabelledImages, settings: DistillSettings, seed: int = 0) -> Distiller:
    build = _build(data)
    experts = [
        train_expert(data, build, TrainRecipe(epochs=3, lr=0.05, batch_size=8), ExpertPlan(), seed=s,
                     augment=DiffAugment())
        for s in (1, 2)
    ]
    network = seeded(0, build)
    generator = make_generator(seed)
    synthetic = initialise_synthetic(data, 2, network=network, spec=ParamSpec.of(network),
                                     final_params=[e[-1] for e in experts], settings=settings, generator=generator)
    return Distiller(synthetic, network, experts, settings, generator, augment=DiffAugment())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 28, 32])
def test_one_distillation_step_changes_images_labels_and_lr(channels: int, size: int) -> None:
    data = _data(channels, size)
    distiller = _distiller(data, _settings(threshold=1e9))
    before = distiller.synthetic.detached()
    record = distiller.step()
    assert record.stepped and torch.isfinite(torch.tensor(record.loss))
    after = distiller.synthetic
    assert after.images.shape == (6, channels, size, size)
    assert not torch.equal(before.images, after.images.detach())
    assert not torch.equal(before.label_logits, after.label_logits.detach())
    assert float(before.lr) != float(after.lr.detach())


def test_two_seeded_runs_give_identical_condensed_sets() -> None:
    data = _data(1, 8)
    runs = []
    for _ in range(2):
        distiller = _distiller(data, _settings(iterations=3, threshold=1e9))
        runs.append(distiller.run(3).detached())
    assert torch.equal(runs[0].images, runs[1].images)
    assert torch.equal(runs[0].label_logits, runs[1].label_logits)
    assert torch.equal(runs[0].lr, runs[1].lr)
    other = _distiller(data, _settings(iterations=3, threshold=1e9), seed=7).run(3).detached()
    assert not torch.equal(runs[0].images, other.images)


def test_threshold_skips_the_update() -> None:
    data = _data(1, 8)
    distiller = _distiller(data, _settings(threshold=1e-12))
    before = distiller.synthetic.detached()
    record = distiller.step()
    assert not record.stepped
    assert torch.equal(before.images, distiller.synthetic.images.detach())


def test_sequential_generation_widens_the_start_window() -> None:
    s = DistillSettings(current_max_start_epoch=10, max_start_epoch=20, expansion_end=1000)
    assert [start_epoch_bound(s, it) for it in (0, 500, 1000, 5000)] == [10, 15, 20, 20]
    fixed = DistillSettings(current_max_start_epoch=4, max_start_epoch=4, expansion_end=None)
    assert start_epoch_bound(fixed, 123) == 4


def test_checkpoint_round_trip_resumes_identically() -> None:
    data = _data(1, 8)
    straight = _distiller(data, _settings(threshold=1e9))
    straight.run(4)
    resumed_from = _distiller(data, _settings(threshold=1e9))
    resumed_from.run(2)
    state = resumed_from.state_dict()
    fresh = _distiller(data, _settings(threshold=1e9), seed=99)
    fresh.load_state_dict(state)
    fresh.run(4)
    assert torch.equal(straight.synthetic.images.detach(), fresh.synthetic.images.detach())
    assert torch.equal(straight.synthetic.lr.detach(), fresh.synthetic.lr.detach())


def test_correct_initialisation_uses_real_images_the_expert_gets_right() -> None:
    data = _data(1, 8)
    distiller = _distiller(data, _settings())
    synthetic: SyntheticSet = distiller.synthetic
    assert synthetic.classes.tolist() == [0, 0, 1, 1, 2, 2]
    # every picked image is a real image of its class
    for image, label in zip(synthetic.images.detach(), synthetic.classes, strict=True):
        matches = (data.images == image).flatten(1).all(dim=1).nonzero()
        assert matches.numel() == 1 and int(data.labels[matches[0, 0]]) == int(label)


def test_too_few_real_images_for_the_ipc_is_reported() -> None:
    data = _data(1, 8, per_class=2)
    network = seeded(0, _build(data))
    with pytest.raises(ValueError, match="ipc=5"):
        initialise_synthetic(data, 5, network=network, spec=ParamSpec.of(network),
                             final_params=[torch.zeros(ParamSpec.of(network).numel)], settings=_settings(),
                             generator=make_generator(0))


def test_herding_initialisation_picks_the_herding_baseline_images() -> None:
    """pix_init=herding starts from the images the herding baseline picks with the first expert's network,
    whatever the seed; the distiller's own network keeps its parameters."""
    data = _data(1, 8, per_class=6)
    settings = _settings(pix_init="herding")
    first, other = _distiller(data, settings, seed=0), _distiller(data, settings, seed=5)
    assert torch.equal(first.synthetic.images, other.synthetic.images)
    expert = first.experts[0][-1]
    agent = seeded(0, _build(data))
    load_flat_params(agent, expert)
    rows = per_class(embed(agent, data.images), data.labels, data.num_classes, 2, "herding")
    assert torch.equal(first.synthetic.images.detach(), data.images[rows])
    assert first.synthetic.classes.tolist() == [0, 0, 1, 1, 2, 2]
    untouched = seeded(0, _build(data))
    assert all(torch.equal(a, b) for a, b in zip(first.network.parameters(), untouched.parameters(), strict=True))
    # a random real start (the same seed) picks other images: the test can tell the two apart
    assert not torch.equal(_distiller(data, _settings(pix_init="real"), seed=0).synthetic.images.detach(),
                           data.images[rows])

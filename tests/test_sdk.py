"""The SDK call end to end on the embedded digits, at the smallest settings (preset ``tiny``)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import pad_sdk
from pad_sdk.demo import load_digits_arrays


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    return load_digits_arrays()


@pytest.fixture(scope="module")
def tiny_result(digits) -> pad_sdk.DistillResult:  # type: ignore[no-untyped-def]
    images, labels, names = digits
    return pad_sdk.distill(images, labels, ipc=2, preset="tiny", class_names=names, seed=3)


def test_result_holds_a_condensed_set_and_its_accuracy(tiny_result: pad_sdk.DistillResult) -> None:
    r = tiny_result
    assert r.images.shape == (20, 1, 8, 8) and r.images.dtype == torch.float32
    assert sorted(torch.bincount(r.labels).tolist()) == [2] * 10
    assert r.soft_labels is not None and r.soft_labels.shape == (20, 10)
    assert r.learned_lr is not None and r.learned_lr > 0
    acc = r.accuracy
    assert acc is not None and acc.random is not None and acc.full is not None
    assert 0.0 <= acc.condensed.mean <= 1.0 and len(acc.condensed.accuracies) == r.config.evaluation.seeds
    assert len(acc.condensed.per_class_recall) == 10
    assert acc.retention == pytest.approx(acc.condensed.mean / acc.full.mean)
    assert {"scoring", "experts", "distillation", "evaluation", "total"} <= set(r.timings)
    assert len(r.loss_history) == r.config.distill.iterations
    assert r.source["split"]["fraction"] == 0.2


def test_save_and_load_round_trip_exactly(tiny_result: pad_sdk.DistillResult, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = tiny_result.save(str(tmp_path / "export"))
    assert {f for f in manifest["files"]} >= {"data.parquet", "preview.png"}
    loaded = pad_sdk.load_condensed(str(tmp_path / "export"))
    assert torch.equal(loaded.images, tiny_result.images)
    assert torch.equal(loaded.labels, tiny_result.labels)
    assert tiny_result.soft_labels is not None and loaded.label_logits is not None
    assert torch.equal(loaded.label_logits, tiny_result.soft_labels)
    assert loaded.learned_lr == tiny_result.learned_lr
    assert loaded.normalisation == tiny_result.condensed.normalisation
    assert loaded.metadata["run"]["ipc"] == 2


def test_a_tampered_export_is_refused(tiny_result: pad_sdk.DistillResult, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tiny_result.save(str(tmp_path / "export"))
    with open(tmp_path / "export" / "data.parquet", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(pad_sdk.ConnectorError):
        pad_sdk.load_condensed(str(tmp_path / "export"))


def test_condensed_set_trains_a_model_elsewhere(tiny_result: pad_sdk.DistillResult) -> None:
    dataset = tiny_result.dataset()
    x, target = dataset[0]
    assert x.shape == (1, 8, 8) and target.shape == (10,) and abs(float(target.sum()) - 1) < 1e-5
    hard = tiny_result.dataset(soft=False)
    assert int(hard[0][1]) == int(tiny_result.labels[0])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for xb, yb in DataLoader(dataset, batch_size=8, shuffle=False):
        loss = -(yb * torch.log_softmax(model(xb), dim=1)).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)


def test_bad_arrays_get_typed_errors_that_name_the_problem(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels, _ = digits
    broken = images.astype(np.float32).copy()
    broken[17, 0, 3, 3] = np.nan
    with pytest.raises(pad_sdk.DataError, match=r"row 17") as info:
        pad_sdk.distill(broken, labels, ipc=1, preset="tiny")
    assert info.value.row == 17
    wrong = labels.copy()
    wrong[5] = 12
    with pytest.raises(pad_sdk.DataError, match=r"row 5 has class 12"):
        pad_sdk.distill(images, wrong, ipc=1, preset="tiny", class_names=tuple("abcdefghij"))
    with pytest.raises(pad_sdk.DataError, match="shape"):
        pad_sdk.distill(images, labels[:-1], ipc=1, preset="tiny")
    with pytest.raises(pad_sdk.DataError, match="needs 500 real images per class"):
        pad_sdk.distill(images, labels, ipc=500, preset="tiny", evaluate=False)
    with pytest.raises(pad_sdk.DataError, match="images must be numeric, got dtype <U"):
        pad_sdk.distill(images.astype(str), labels, ipc=1, preset="tiny")
    # a read-only buffer (Arrow, memory map) is copied, never shared with a tensor that training writes to
    frozen = images.astype(np.float32)
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it shares a read-only array
        tensor = pad_sdk.pipeline.to_float_images(frozen)
    tensor += 1.0
    assert float(frozen.max()) == float(images.max())


def test_bad_settings_name_the_field(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels, _ = digits
    with pytest.raises(pad_sdk.ConfigError, match="unknown preset 'fast'"):
        pad_sdk.distill(images, labels, preset="fast")
    with pytest.raises(pad_sdk.ConfigError) as info:
        pad_sdk.distill(images, labels, preset="tiny", overrides={"distill": {"syn_steps": 0}})
    assert info.value.field == "distill.syn_steps"
    with pytest.raises(pad_sdk.ConfigError, match=r"exceeds experts\.epochs"):
        pad_sdk.distill(images, labels, preset="tiny", overrides={"distill": {"max_start_epoch": 50}})
    with pytest.raises(pad_sdk.ConfigError, match=r"extra_forbidden|Extra inputs"):
        pad_sdk.distill(images, labels, preset="tiny", overrides={"distill": {"synsteps": 3}})


def test_policy_sets_the_ipc_and_judges_the_result(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels, names = digits
    policy = {"compression": {"fraction": 0.02}, "acceptance": {"min_retention": 0.99, "max_seed_std": 0.5}}
    result = pad_sdk.distill(images, labels, preset="tiny", policy=policy, class_names=names)
    # 2 % of ~1,438 training images over 10 classes resolves to 2 images per class
    assert result.config.ipc == 2
    assert result.verdict is not None and result.verdict.rule("acceptance.min_retention").status == "fail"
    with pytest.raises(pad_sdk.PolicyViolation) as info:
        pad_sdk.distill(images, labels, preset="tiny", policy=policy, strict=True, class_names=names)
    assert info.value.verdict.status == "fail"


def test_trajectory_store_resumes_without_retraining(digits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    images, labels, _ = digits
    store = str(tmp_path / "trajectories")
    first = pad_sdk.distill(images, labels, ipc=1, preset="tiny", trajectory_store=store, evaluate=False)
    files = sorted(p for p in os.listdir(store) if p.startswith("expert-"))
    stamps = {p: os.stat(os.path.join(store, p)).st_mtime_ns for p in files}
    assert len(files) == first.config.experts.num_experts
    second = pad_sdk.distill(images, labels, ipc=1, preset="tiny", trajectory_store=store, evaluate=False)
    assert {p: os.stat(os.path.join(store, p)).st_mtime_ns for p in files} == stamps
    assert torch.equal(first.images, second.images)


def test_distill_reads_a_dataset_url(digits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    images, labels, _ = digits
    path = tmp_path / "digits.npz"
    np.savez(path, image=images, label=labels)
    result = pad_sdk.distill(str(path), ipc=1, preset="tiny", evaluate=False)
    assert result.images.shape == (10, 1, 8, 8)
    assert result.source["format"] == "npz" and result.source["fingerprint"]
    with pytest.raises(pad_sdk.ConnectorError):
        pad_sdk.distill(str(tmp_path / "missing.npz"), ipc=1, preset="tiny")


def test_sweep_shares_experts_across_ipcs(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels, _ = digits
    results = pad_sdk.sweep(images, labels, ipcs=[1, 2], preset="tiny")
    assert [r.config.ipc for r in results] == [1, 2]
    assert "experts" in results[0].timings and "experts" not in results[1].timings


def test_group_and_cross_architecture_accuracy(digits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    import connectors

    images, labels, _ = digits
    regions = np.where(np.arange(labels.size) % 3 == 0, "north", "south")
    flat = pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), 64)
    pq.write_table(pa.table({"image": flat, "label": labels, "region": regions}), tmp_path / "d.parquet")
    result = pad_sdk.distill(str(tmp_path / "d.parquet"), ipc=1, preset="tiny", group_column="region",
                             overrides={"evaluation": {"architectures": ["mlp"]}})
    acc = result.accuracy
    assert acc is not None and acc.group_accuracy is not None and acc.cross_architecture is not None
    assert set(acc.group_accuracy) == {"north", "south"}
    assert set(acc.group_accuracy["north"]) == {"full", "random", "condensed"}
    # the group accuracies, weighted by the holdout's group sizes, add up to the overall accuracy
    holdout = connectors.stratified_split(labels, 0.2, 0).holdout_rows
    sizes = {g: int((regions[holdout] == g).sum()) for g in ("north", "south")}
    weighted = sum(acc.group_accuracy[g]["condensed"] * n for g, n in sizes.items()) / sum(sizes.values())
    assert weighted == pytest.approx(acc.condensed.mean, abs=1e-6)
    assert len(acc.cross_architecture["mlp"].accuracies) == result.config.evaluation.seeds
    assert set(result.measurements["group_accuracy"]["region"]) == {"north", "south"}



def test_evaluate_export_repeats_the_runs_condensed_accuracy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Same settings, holdout and network seeds as the run: on the same machine, the same accuracies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images, labels, _ = load_digits_arrays()
    keep = np.concatenate([np.flatnonzero(labels == c)[:40] for c in range(10)])
    flat = pa.FixedSizeListArray.from_arrays(pa.array(images[keep].reshape(-1)), 64)
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"image": flat, "label": pa.array(labels[keep])}), tmp_path / "data" / "part-0.parquet")
    source = str(tmp_path / "data")
    overrides = {"experts": {"num_experts": 1}, "evaluation": {"seeds": 2, "epochs": 5}, "distill": {"iterations": 3}}
    result = pad_sdk.distill(source, ipc=1, preset="tiny", overrides=overrides)
    result.save(str(tmp_path / "export"))
    measured = pad_sdk.evaluate_export(str(tmp_path / "export"), source)
    assert result.accuracy is not None and measured["same_holdout_as_run"]
    assert measured["condensed"]["accuracies"] == list(result.accuracy.condensed.accuracies)
    assert measured["recorded_condensed_accuracies"] == list(result.accuracy.condensed.accuracies)

"""The trajectory store: safetensors files on any fsspec URL, atomic, checked against its header."""

from __future__ import annotations

import uuid

import pytest
import torch

from pad_sdk.errors import TrajectoryStoreError
from pad_sdk.trajectories import TrajectoryStore

HEADER = {"network": {"name": "mlp"}, "param_names": ["w", "b"], "param_shapes": [[2, 3], [2]], "epochs": 4,
          "fingerprint": "abc"}


@pytest.fixture(params=["memory", "local"])
def store_uri(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "memory":
        return f"memory://trajectories-{uuid.uuid4().hex}"
    return str(tmp_path / "store")


def test_round_trip_and_completed_listing(store_uri: str) -> None:
    store = TrajectoryStore(store_uri)
    store.initialise(HEADER)
    trajectory = torch.randn(5, 8)
    store.save(3, trajectory, seed=7)
    store.save(0, trajectory * 2, seed=8)
    reopened = TrajectoryStore(store_uri)
    assert reopened.completed() == [0, 3]
    assert torch.equal(reopened.load(3), trajectory)
    assert reopened.header["epochs"] == 4


def test_reopening_with_other_settings_is_refused(store_uri: str) -> None:
    TrajectoryStore(store_uri).initialise(HEADER)
    with pytest.raises(TrajectoryStoreError, match="epochs"):
        TrajectoryStore(store_uri).initialise(HEADER | {"epochs": 9})


def test_wrong_shape_and_missing_expert_are_clear_errors(store_uri: str) -> None:
    store = TrajectoryStore(store_uri)
    store.initialise(HEADER)
    with pytest.raises(TrajectoryStoreError, match="does not fit"):
        store.save(0, torch.randn(3, 8), seed=0)
    with pytest.raises(TrajectoryStoreError, match="expert 5 is missing"):
        store.load(5)


def test_corrupt_expert_file_is_reported_not_unpickled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = TrajectoryStore(str(tmp_path / "s"))
    store.initialise(HEADER)
    (tmp_path / "s" / "expert-00001.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(TrajectoryStoreError, match="corrupt"):
        store.load(1)
    assert store.completed() == [1]


def test_missing_store_is_named() -> None:
    with pytest.raises(TrajectoryStoreError, match="no trajectory store"):
        _ = TrajectoryStore(f"memory://nothing-{uuid.uuid4().hex}").header


def test_large_trajectories_spill_to_a_temporary_store_with_the_same_result() -> None:
    import gc
    import os

    import numpy as np

    import pad_sdk
    from pad_sdk.demo import load_digits_arrays

    images, labels, names = load_digits_arrays()
    keep = np.concatenate([np.nonzero(labels == c)[0][:30] for c in range(3)])
    kwargs = {"ipc": 1, "preset": "tiny", "class_names": names[:3], "seed": 2, "evaluate": False}
    in_memory = pad_sdk.distill(images[keep], labels[keep], **kwargs)
    spilled = pad_sdk.distill(images[keep], labels[keep], overrides={"compute": {"spill_trajectories_gib": 0}},
                              **kwargs)
    kept, spill = in_memory.decisions["trajectories"], spilled.decisions["trajectories"]
    assert kept["where"] == "memory" and "within the spill limit" in kept["reason"]
    assert spill["temporary"] is True and "exceed compute.spill_trajectories_gib" in spill["reason"]
    assert spill["bytes"] == kept["bytes"] > 0
    assert torch.equal(in_memory.images, spilled.images)  # where they were kept changes nothing
    gc.collect()
    assert not os.path.exists(spill["where"])  # the temporary store went with the run

"""A Hugging Face repository that the `datasets` library wrote, read from its root by the SDK: its class
names, its own test split as the holdout, and its validation split as the validation set."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import connectors
import pad_sdk
from pad_sdk.data import prepare, raw_from_source, read_here, with_validation
from pad_sdk.demo import load_digits_arrays

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # `datasets` writes the repositories; it never goes online
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_repo(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """data/{split}-00000-of-00001.parquet for each split, with Image and ClassLabel features."""
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(NAMES))})
    (root / "data").mkdir(parents=True)
    for split, (images, labels) in splits.items():
        encoded = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img[0]).save(buf, format="PNG")
            encoded.append({"bytes": buf.getvalue(), "path": None})
        dataset = datasets.Dataset.from_dict({"image": encoded, "label": labels.tolist()}, features=features)
        dataset.to_parquet(str(root / f"data/{split}-00000-of-00001.parquet"))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = load_digits_arrays()
    return images, labels


def test_distill_reads_the_repository_root_and_evaluates_on_its_test_split(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    write_repo(tmp_path, {"train": (images[:1437], labels[:1437]), "test": (images[1437:], labels[1437:])})
    # the smallest run that still evaluates: one short expert, one evaluation network
    fewer = {"experts": {"num_experts": 1, "epochs": 4}, "evaluation": {"epochs": 5, "seeds": 1, "full_epochs": 1},
             "distill": {"iterations": 2}}
    result = pad_sdk.distill(str(tmp_path), ipc=1, preset="tiny", seed=0, overrides=fewer)
    assert result.source["format"] == "huggingface"
    assert result.source["split"] == {"train": "train", "holdout": "test", "train_rows": 1437, "holdout_rows": 360}
    assert result.condensed.class_names == NAMES
    assert result.accuracy is not None and len(result.accuracy.condensed.per_class_recall) == 10


def test_validation_split_becomes_the_validation_set_next_to_a_test_split(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    write_repo(tmp_path, {"train": (images[:300], labels[:300]), "validation": (images[300:400], labels[300:400]),
                          "test": (images[400:480], labels[400:480])})
    src = connectors.open_source(str(tmp_path))
    raw = raw_from_source(src, read_here, holdout_fraction=0.2, seed=0)
    assert raw.source["split"] == {"train": "train", "holdout": "test", "validation": "validation",
                                   "train_rows": 300, "holdout_rows": 80, "validation_rows": 100}
    assert raw.validation_images is not None and raw.validation_labels is not None
    assert torch.equal(raw.validation_labels, torch.from_numpy(labels[300:400]))
    data = prepare(raw, zca=True)
    assert data.validation is not None and data.zca is not None
    # normalised and whitened with the training statistics, as the holdout is
    expected = data.zca.transform(data.normalisation.apply(raw.validation_images[:]))
    torch.testing.assert_close(data.validation.images[:], expected)
    assert with_validation(data, 0.2, seed=0) is data  # the source's own split is kept, nothing carved


def test_a_lone_validation_split_is_the_holdout_and_the_provenance_says_so(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    write_repo(tmp_path, {"train": (images[:200], labels[:200]), "validation": (images[200:260], labels[200:260])})
    raw = raw_from_source(connectors.open_source(str(tmp_path)), read_here, holdout_fraction=0.2, seed=0)
    split = raw.source["split"]
    assert split["holdout"] == "validation" and split["holdout_rows"] == 60 and "validation" not in split
    assert "no test split" in split["note"]
    assert raw.validation_images is None


def test_a_repository_without_a_training_split_is_refused(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    write_repo(tmp_path, {"test": (images[:50], labels[:50]), "validation": (images[50:90], labels[50:90])})
    with pytest.raises(pad_sdk.DataError, match="no training split, only test, validation"):
        raw_from_source(connectors.open_source(str(tmp_path)), read_here, holdout_fraction=0.2, seed=0)


def test_a_dev_split_is_the_validation_split_and_train_is_train(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    write_repo(tmp_path, {"dev": (images[:40], labels[:40]), "test": (images[40:80], labels[40:80]),
                          "train": (images[80:200], labels[80:200])})
    raw = raw_from_source(connectors.open_source(str(tmp_path)), read_here, holdout_fraction=0.2, seed=0)
    assert raw.source["split"] == {"train": "train", "holdout": "test", "validation": "dev", "train_rows": 120,
                                   "holdout_rows": 40, "validation_rows": 40}

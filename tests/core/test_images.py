"""Images held in the source dtype: the prepared data keeps uint8 pixels, and what the networks see is the
same as converting everything to float32 up front (to float rounding; bit for bit without ZCA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pad_sdk
from pad_sdk.core.images import StoredImages, batches
from pad_sdk.core.zca import ZCAWhitening
from pad_sdk.data import arrays_to_raw, prepare, to_stored_images, with_validation
from pad_sdk.demo import load_digits_arrays
from pad_sdk.errors import DataError


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    return load_digits_arrays()


def _float_reference(images: np.ndarray) -> torch.Tensor:
    """What the earlier code held: the whole set converted to float32 up front (torch's x / 255)."""
    return torch.from_numpy(images).float() / 255.0


def test_prepared_training_set_stays_uint8(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels, names = digits
    assert images.dtype == np.uint8
    raw = arrays_to_raw(images, labels, test_images=None, test_labels=None, class_names=names,
                        holdout_fraction=0.2, seed=0)
    data = with_validation(prepare(raw, zca=False), 0.1, seed=0)
    for part in (data.train, data.test, data.validation):
        assert part is not None and isinstance(part.images, StoredImages)
        assert part.images.pixels.dtype == torch.uint8
        assert part.images.nbytes == len(part) * 64  # one byte per pixel, not four
    assert data.train.images[torch.tensor([0, 1])].dtype == torch.float32


@pytest.mark.parametrize("zca", [False, True])
def test_batches_read_the_same_values_as_a_float_copy(digits, zca: bool) -> None:  # type: ignore[no-untyped-def]
    images, labels, names = digits
    raw = arrays_to_raw(images, labels, test_images=images[:50], test_labels=labels[:50], class_names=names,
                        holdout_fraction=0.2, seed=0)
    data = prepare(raw, zca=zca)
    x = _float_reference(images)
    mean = x.double().mean(dim=(0, 2, 3))
    std = x.double().std(dim=(0, 2, 3))
    assert data.normalisation.mean == pytest.approx(mean.tolist(), rel=1e-12)
    assert data.normalisation.std == pytest.approx(std.tolist(), rel=1e-12)
    expected = (x - torch.tensor(data.normalisation.mean).view(1, -1, 1, 1)) / torch.tensor(
        data.normalisation.std).view(1, -1, 1, 1)
    if zca:
        whitening = ZCAWhitening.fit(expected)
        expected = whitening.transform(expected)
    rows = torch.tensor([5, 0, 1700, 33])
    got = data.train.images[rows]
    if zca:
        assert torch.allclose(got, expected[rows], atol=1e-4, rtol=1e-4)
        assert torch.allclose(torch.cat(list(batches(data.train.images, 97))), expected, atol=1e-4, rtol=1e-4)
    else:
        assert torch.equal(got, expected[rows])
        assert torch.equal(torch.cat(list(batches(data.train.images, 97))), expected)
    assert torch.equal(data.train.images[3], data.train.images[3:4][0])


def test_uint8_and_float_inputs_give_the_same_condensed_set(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels, names = digits
    keep = np.concatenate([np.nonzero(labels == c)[0][:40] for c in range(4)])
    small, small_labels = images[keep], labels[keep]
    kwargs = {"ipc": 1, "preset": "tiny", "class_names": names[:4], "seed": 5, "evaluate": False}
    from_uint8 = pad_sdk.distill(small, small_labels, **kwargs)
    from_float = pad_sdk.distill(_float_reference(small), small_labels, **kwargs)
    assert torch.equal(from_uint8.images, from_float.images)
    assert from_uint8.soft_labels is not None and from_float.soft_labels is not None
    assert torch.equal(from_uint8.soft_labels, from_float.soft_labels)


def test_moving_stored_images_moves_the_pixels_not_a_float_copy(digits) -> None:  # type: ignore[no-untyped-def]
    images, _, _ = digits
    stored = to_stored_images(images[:10])
    moved = stored.to("meta")
    assert moved.pixels.is_meta and moved.pixels.dtype == torch.uint8 and moved.shape == (10, 1, 8, 8)
    assert stored.to("cpu") is stored


def test_row_views_select_rows_without_copying_and_read_like_a_copy(digits) -> None:  # type: ignore[no-untyped-def]
    """Mapped pixels (a source over the memory budget) are read through row numbers: a subset of a subset
    selects from the same pixels, and every read gives what the copied rows would give."""
    images, _, _ = digits
    whole = to_stored_images(images).normalised((0.3,), (0.2,))
    view = StoredImages(whole.pixels, whole.scale, whole.mean, whole.std, rows=torch.arange(len(whole)))
    picked = torch.tensor([5, 1, 700, 3])
    inner = view.subset(torch.arange(100, 900)).subset(torch.tensor([0, 600, 5]))
    assert inner.mapped and inner.pixels is whole.pixels  # selected, not copied
    assert inner.shape == (3, 1, 8, 8) and len(inner) == 3 and inner.nbytes == 3 * 64
    assert torch.equal(inner.materialise(), whole[torch.tensor([100, 700, 105])])
    assert torch.equal(view[picked], whole[picked]) and torch.equal(view[7], whole[7])
    assert torch.equal(view[10:20], whole[10:20])
    assert view.to("meta") is view  # stays in the host's mapping; training moves each batch


def test_integer_images_outside_the_pixel_range_name_the_row() -> None:
    pixels = np.zeros((3, 4, 4), dtype=np.int32)
    pixels[2, 1, 1] = 256
    with pytest.raises(DataError, match="row 2"):
        to_stored_images(pixels)
    masks = np.ones((2, 4, 4), dtype=np.int64)
    assert torch.equal(to_stored_images(masks)[0:2], torch.ones(2, 1, 4, 4))  # 0/1 masks stay in [0, 1]

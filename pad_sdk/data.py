"""Data intake: reading a source or arrays, splitting off the holdout, validating, normalising.

``RawData`` is what was read (images in [0, 1], labels, class names, where it came from);
``PreparedData`` is what the stages train on (normalised, optionally ZCA-whitened). Runtimes read through
:func:`load_source` (in process) or their own reader with the same :func:`raw_from_source`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

import connectors
from pad_sdk.core.images import Images, StoredImages, batches, normalise
from pad_sdk.core.training import LabelledImages
from pad_sdk.core.zca import ZCAWhitening
from pad_sdk.errors import ConfigError, DataError, translated_errors

ArrayLike = np.ndarray | torch.Tensor
TEST_SPLITS = ("test", "holdout")  # the holdout when present
VALIDATION_SPLITS = ("validation", "val", "valid", "dev")  # the validation set next to a test split, else the holdout
HOLDOUT_SPLITS = TEST_SPLITS + VALIDATION_SPLITS
MAX_PIXEL = 1e6  # beyond it the float32 mean/std of the training set lose their meaning
MAX_CLASSES = 65_536  # class ids are 0..K-1; a larger id is a wrong column, not a class


class SourceLoader(Protocol):
    """Reads a source into :class:`RawData` (a runtime: in this process, or on a cluster)."""

    def load(self, source: str | connectors.Source, *, holdout_fraction: float, seed: int,
             storage_options: Mapping[str, Any] | None, open_kwargs: Mapping[str, Any]) -> RawData: ...


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std (C,) of the training images, applied before everything else."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        return normalise(images, self.mean, self.std)

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return images * std + mean


@dataclass(frozen=True)
class PreparedData:
    """Normalised (and optionally ZCA-whitened) train and holdout sets."""

    train: LabelledImages
    test: LabelledImages
    class_names: tuple[str, ...]
    normalisation: Normalisation
    zca: ZCAWhitening | None = None
    test_groups: np.ndarray | None = None  # (N_test,) group value of each holdout example, if the source has one
    group_column: str | None = None
    validation: LabelledImages | None = None  # carved from the training data for choosing settings, never reported


def to_float_images(images: np.ndarray | torch.Tensor, field: str = "images") -> torch.Tensor:
    """(N, C, H, W) or (N, H, W) arrays -> float32 (N, C, H, W); integers are scaled from [0, 255] (16-bit
    images from [0, 65535]). Validated as :func:`to_stored_images` does."""
    return to_stored_images(images, field).materialise().contiguous()


def to_stored_images(images: np.ndarray | torch.Tensor, field: str = "images") -> StoredImages:
    """(N, C, H, W) or (N, H, W) arrays -> :class:`StoredImages` in the source's dtype where it is 8 or 16
    bits (uint8 for almost every image dataset: a quarter of float32's memory), float32 otherwise.

    Integers are read from [0, 255] (16-bit from [0, 65535]; 0/1 integer masks as they are). Non-finite
    values, integers outside the pixel range, floats beyond :data:`MAX_PIXEL` (they overflow the float32
    statistics) and wrong ranks are rejected with the offending row.
    """
    if isinstance(images, torch.Tensor):
        tensor = images
    else:
        array = np.asarray(images)
        if array.dtype.kind not in "biuf":
            raise DataError(f"{field} must be numeric, got dtype {array.dtype}", field=field)
        # Arrow and memory-mapped buffers are read-only; torch would share them (and warn). Copy the source
        # dtype (uint8: a quarter of the float32 result), not a float result.
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() != 4:
        raise DataError(f"{field} must have shape (N, C, H, W) or (N, H, W), got {tuple(tensor.shape)}", field=field)
    if tensor.shape[0] == 0:
        raise DataError(f"{field} is empty", field=field)
    if tensor.dtype == torch.uint8:
        return StoredImages(tensor.contiguous(), scale=255.0)
    if not torch.is_floating_point(tensor):
        top = 65535 if tensor.dtype == torch.uint16 else 255
        rows = tensor.reshape(tensor.shape[0], -1)
        outside = ((rows < 0) | (rows > top)).any(dim=1)
        if outside.any():
            row = int(torch.nonzero(outside)[0])
            raise DataError(f"{field} row {row} has integer pixel values outside [0, {top}]", field=field, row=row)
        if tensor.dtype == torch.uint16:
            return StoredImages(tensor.contiguous(), scale=65535.0)
        scale = 255.0 if int(tensor.max()) > 1 else 1.0  # 0/1 masks are already in [0, 1]
        return StoredImages(tensor.to(torch.uint8).contiguous(), scale=scale)
    tensor = tensor.float()
    flat = tensor.reshape(tensor.shape[0], -1)
    bad = ~torch.isfinite(flat).all(dim=1)
    if bad.any():
        row = int(torch.nonzero(bad)[0])
        raise DataError(f"{field} row {row} contains NaN or infinite values", field=field, row=row)
    huge = (flat.abs() > MAX_PIXEL).any(dim=1)
    if huge.any():
        row = int(torch.nonzero(huge)[0])
        raise DataError(f"{field} row {row} has pixel values beyond +-{MAX_PIXEL:g}; scale the images to [0, 1] or "
                        "[0, 255]", field=field, row=row)
    return StoredImages(tensor.contiguous())


def as_stored(images: Images) -> StoredImages:
    """Stored images as they are; a float tensor (already in [0, 1]) as float32 stored images."""
    return images if isinstance(images, StoredImages) else StoredImages(images)


def to_labels(labels: np.ndarray | torch.Tensor, num_rows: int, num_classes: int | None, field: str = "labels"
              ) -> torch.Tensor:
    """Integer class ids (N,) in [0, num_classes); bad rows are named.

    Without ``num_classes`` the classes are 0..max(label), at most :data:`MAX_CLASSES` (a label value must
    not decide how much memory the run takes).
    """
    if not isinstance(labels, torch.Tensor):
        array = np.asarray(labels)
        if array.dtype.kind not in "biuf":
            raise DataError(f"{field} must be integer class ids, got dtype {array.dtype}; map class names to ids "
                            "0..K-1 and pass the names as class_names", field=field)
        labels = array
    tensor = torch.as_tensor(labels)
    if tensor.dim() != 1 or tensor.shape[0] != num_rows:
        raise DataError(f"{field} must have shape ({num_rows},), got {tuple(tensor.shape)}", field=field)
    if torch.is_floating_point(tensor) and not torch.equal(tensor, tensor.round()):
        row = int(torch.nonzero(tensor != tensor.round())[0])
        raise DataError(f"{field} row {row} is not an integer class id", field=field, row=row)
    tensor = tensor.long()
    if num_classes is None and int(tensor.max()) >= MAX_CLASSES:
        row = int(torch.argmax(tensor))
        raise DataError(f"{field} row {row} has class {int(tensor[row])}; class ids must be below {MAX_CLASSES:,} "
                        "(labels are ids 0..K-1, not arbitrary values)", field=field, row=row)
    upper = num_classes if num_classes is not None else int(tensor.max()) + 1
    bad = (tensor < 0) | (tensor >= upper)
    if bad.any():
        row = int(torch.nonzero(bad)[0])
        raise DataError(
            f"{field} row {row} has class {int(tensor[row])}, outside [0, {upper})", field=field, row=row
        )
    return tensor


@dataclass(frozen=True)
class RawData:
    """Images and labels before normalisation, plus what is known about their origin."""

    train_images: Images  # StoredImages from sources and arrays (the source's dtype); read as [0, 1] floats
    train_labels: torch.Tensor
    test_images: Images
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    source: dict[str, Any]
    test_groups: np.ndarray | None = None
    group_column: str | None = None
    validation_images: Images | None = None  # the source's own validation split, when it has a test split
    validation_labels: torch.Tensor | None = None


def load_source(
    source: str | connectors.Source,
    *,
    holdout_fraction: float,
    seed: int,
    storage_options: Mapping[str, Any] | None = None,
    read: Callable[[connectors.Source, str | None], connectors.Batch] | None = None,
    **open_kwargs: Any,
) -> RawData:
    """Read a connector source into memory, using its test split or a seeded stratified holdout.

    ``read(src, split)`` returns the rows of a split (all rows for None) in row order; the default reads
    them here, the Ray runtime passes one that collects them from Ray Data blocks on a worker.
    """
    src = open_source(source, storage_options=storage_options, **open_kwargs)
    return raw_from_source(src, read or read_here, holdout_fraction=holdout_fraction, seed=seed)


def open_source(source: str | connectors.Source, *, storage_options: Mapping[str, Any] | None = None,
                **open_kwargs: Any) -> connectors.Source:
    with translated_errors():
        if isinstance(source, connectors.Source):
            return source
        return connectors.open_source(source, storage_options=storage_options, **open_kwargs)


def read_here(src: connectors.Source, split: str | None) -> connectors.Batch:
    return src.read_all(split=split)


@dataclass(frozen=True)
class SplitRows:
    """The rows of one split as read: images held as :class:`StoredImages` (in memory, or in a file mapping
    for a source over the memory budget: :mod:`pad_sdk.disk_data`), labels and group values."""

    images: StoredImages
    labels: np.ndarray
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, rows: np.ndarray) -> SplitRows:
        return SplitRows(self.images.subset(torch.from_numpy(rows)), self.labels[rows],
                         None if self.groups is None else self.groups[rows])


Reader = Callable[[connectors.Source, str | None], "connectors.Batch | SplitRows"]


def _held(rows: connectors.Batch | SplitRows, field: str) -> SplitRows:
    if isinstance(rows, SplitRows):
        return rows
    return SplitRows(to_stored_images(rows.images, field), np.asarray(rows.labels, dtype=np.int64), rows.groups)


def raw_from_source(src: connectors.Source, read: Reader, *, holdout_fraction: float, seed: int) -> RawData:
    """The train and holdout sets of ``src``: its test split if it has one, else a seeded stratified split.

    ``read(src, split)`` returns a split's rows (all rows for None), as a connector batch or as held rows.
    """
    with translated_errors():
        schema = src.schema
        splits = splits_to_read(schema)
        validation = None
        if len(splits) >= 2:
            train_split, holdout = splits[0], splits[1]
            train, test = _held(read(src, train_split), "images"), _held(read(src, holdout), "holdout images")
            split_record: dict[str, Any] = {"train": train_split, "holdout": holdout,
                                            "train_rows": len(train), "holdout_rows": len(test)}
            if len(splits) == 3:
                validation = _held(read(src, splits[2]), "validation images")
                split_record.update(validation=splits[2], validation_rows=len(validation))
            elif holdout in VALIDATION_SPLITS:
                split_record["note"] = f"no test split: the source's {holdout!r} split is the holdout"
        else:
            everything = _held(read(src, None), "images")
            plan = connectors.stratified_split(everything.labels, holdout_fraction, seed)
            train, test = everything.take(plan.train_rows), everything.take(plan.holdout_rows)
            split_record = plan.to_dict()
    return RawData(
        train.images, torch.from_numpy(train.labels), test.images, torch.from_numpy(test.labels),
        tuple(schema.class_names), source_record(src, split_record),
        test_groups=test.groups, group_column=schema.group_column,
        validation_images=None if validation is None else validation.images,
        validation_labels=None if validation is None else torch.from_numpy(validation.labels),
    )


def splits_to_read(schema: connectors.SourceSchema) -> list[str | None]:
    """[train, holdout] or [train, holdout, validation] split names, or [None] without a holdout split.

    ``test`` (or ``holdout``) is the holdout; a ``validation`` (or ``val``) split next to it becomes the
    validation set; with no test split the validation split is the holdout.
    """
    names = schema.splits or ()
    test = next((s for s in TEST_SPLITS if s in names), None)
    validation = next((s for s in VALIDATION_SPLITS if s in names), None)
    if test is None and validation is None:
        return [None]
    train = "train" if "train" in names else next((s for s in names if s not in HOLDOUT_SPLITS), None)
    if train is None:  # reading "all rows" would train on the holdout
        raise DataError(f"the source has no training split, only {', '.join(names)}; add a train split, or read "
                        "one split as the whole source", field="source")
    if test is None:
        return [train, validation]
    return [train, test] if validation is None else [train, test, validation]


def source_record(src: connectors.Source, split: Mapping[str, Any]) -> dict[str, Any]:
    """What a result records about where its data came from (never credentials)."""
    schema = src.schema
    return {"uri": schema.uri, "fingerprint": schema.fingerprint, "stored_bytes": schema.stored_bytes,
            "rows": schema.num_rows, "format": schema.format, "split": dict(split)}


def arrays_to_raw(
    images: ArrayLike,
    labels: ArrayLike,
    *,
    test_images: ArrayLike | None,
    test_labels: ArrayLike | None,
    class_names: tuple[str, ...] | None,
    holdout_fraction: float,
    seed: int,
) -> RawData:
    """Validate in-memory arrays; split off a stratified holdout when no test set is given."""
    x = to_stored_images(images)
    num_classes = len(class_names) if class_names else None
    y = to_labels(labels, x.shape[0], num_classes)
    names = class_names or tuple(str(c) for c in range(int(y.max()) + 1))
    if test_images is not None and test_labels is not None:
        tx = to_stored_images(test_images, "test_images")
        ty = to_labels(test_labels, tx.shape[0], len(names), "test_labels")
        if tx.shape[1:] != x.shape[1:]:
            raise DataError(
                f"test_images have shape {tuple(tx.shape[1:])} per image, images {tuple(x.shape[1:])}",
                field="test_images",
            )
        return RawData(x, y, tx, ty, names, {"uri": None, "rows": int(x.shape[0] + tx.shape[0])})
    if (test_images is None) != (test_labels is None):
        raise DataError("give both test_images and test_labels, or neither", field="test_labels")
    with translated_errors():
        plan = connectors.stratified_split(y.numpy(), holdout_fraction, seed)
    train, test = torch.from_numpy(plan.train_rows), torch.from_numpy(plan.holdout_rows)
    return RawData(x.subset(train), y[train], x.subset(test), y[test], names, {"uri": None, "rows": int(x.shape[0]),
                                                                 "split": plan.to_dict()})


def prepare(raw: RawData, *, zca: bool) -> PreparedData:
    """Normalise with the training set's per-channel statistics (and optionally ZCA-whiten).

    Nothing is converted here: the prepared sets read the raw pixels through the normalisation (and the
    whitening) a batch at a time, so the training set stays in its source dtype.
    """
    counts = torch.bincount(raw.train_labels, minlength=len(raw.class_names))
    empty = [raw.class_names[c] for c in range(len(raw.class_names)) if counts[c] == 0]
    if empty:
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""  # a bounded message
        raise DataError(f"classes {empty[:10]}{more} have no training examples", field="labels")
    train = as_stored(raw.train_images)
    norm = channel_statistics(train)
    whitening = None
    if zca:
        whitening = ZCAWhitening.fit(batches(train.normalised(norm.mean, norm.std), STATS_BATCH))
    return prepared_with(raw, norm, whitening)


def prepared_with(raw: RawData, norm: Normalisation, whitening: ZCAWhitening | None) -> PreparedData:
    """``raw`` read through a normalisation (and whitening) fitted before: :func:`prepare` without the fit."""
    train, test = as_stored(raw.train_images), as_stored(raw.test_images)
    val = None if raw.validation_images is None else as_stored(raw.validation_images)
    train, test = train.normalised(norm.mean, norm.std, whitening), test.normalised(norm.mean, norm.std, whitening)
    val_x = None if val is None else val.normalised(norm.mean, norm.std, whitening)
    k = len(raw.class_names)
    validation = None
    if val_x is not None and raw.validation_labels is not None:
        validation = LabelledImages(val_x, raw.validation_labels, k)
    return PreparedData(
        LabelledImages(train, raw.train_labels, k), LabelledImages(test, raw.test_labels, k),
        raw.class_names, norm, whitening, test_groups=raw.test_groups, group_column=raw.group_column,
        validation=validation,
    )


STATS_BATCH = 4096  # images converted at a time while computing statistics (4096 x 28 x 28 x 4 B = 12.8 MB)


def channel_statistics(images: StoredImages) -> Normalisation:
    """Per-channel mean and (unbiased) std of ``images`` in [0, 1], in two float64 passes over batches: the
    float32 copy of the whole set is never made."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    count = 0
    for chunk in batches(images, STATS_BATCH):
        total += chunk.double().sum(dim=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = total / count
    squares = torch.zeros_like(total)
    for chunk in batches(images, STATS_BATCH):
        squares += ((chunk.double() - mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3))
    std = (squares / max(count - 1, 1)).sqrt()
    return Normalisation(tuple(float(v) for v in mean), tuple(max(float(v), 1e-6) for v in std))


def read_input(source: str | connectors.Source | ArrayLike, labels: ArrayLike | None, loader: SourceLoader, *,
               test_images: ArrayLike | None, test_labels: ArrayLike | None, class_names: tuple[str, ...] | None,
                holdout_fraction: float, seed: int, storage_options: Mapping[str, Any] | None,
                source_options: Mapping[str, Any]) -> RawData:
    if isinstance(source, (str, connectors.Source)):
        if labels is not None:
            raise ConfigError("labels are read from the source; pass labels only with arrays", field="labels")
        return loader.load(source, holdout_fraction=holdout_fraction, seed=seed, storage_options=storage_options,
                           open_kwargs=source_options)
    if labels is None:
        raise ConfigError("labels are required with an image array", field="labels")
    return arrays_to_raw(source, labels, test_images=test_images, test_labels=test_labels,
                         class_names=class_names, holdout_fraction=holdout_fraction, seed=seed)


def with_validation(data: PreparedData, fraction: float, seed: int) -> PreparedData:
    """``data`` with a stratified, seeded ``fraction`` of every class moved from training to ``validation``.

    The holdout is untouched. Data held on a cluster (shape-only images on the ``meta`` device) and data that
    already has a validation split are returned as they are. Every class keeps at least one training image.
    """
    if fraction <= 0 or data.validation is not None or data.train.images.device.type == "meta":
        return data
    generator = torch.Generator().manual_seed(int(seed) + 7919)
    keep, held = [], []
    for members in data.train.class_indices():
        order = members[torch.randperm(members.numel(), generator=generator)]
        count = min(members.numel() - 1, round(fraction * members.numel()))
        held.append(order[:count])
        keep.append(order[count:])
    train_rows, validation_rows = torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values
    if validation_rows.numel() == 0:
        return data
    return replace(data, train=data.train.subset(train_rows), validation=data.train.subset(validation_rows))

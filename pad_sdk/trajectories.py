"""The trajectory store: expert trajectories on any fsspec URL, in safetensors (never pickle).

Format (version 1), under a prefix ``<uri>/``:

- ``store.json``: ``{"format": "pad-sdk-trajectories", "version": 1, "network": {...}, "param_names": [...],
  "param_shapes": [...], "epochs": E, "fingerprint": "..."}``, written when the store is created;
- ``expert-00000.safetensors`` ...: one file per expert with a single float32 tensor ``trajectory`` of
  shape (E + 1, P) (row k = parameters after k epochs, in module order) and string metadata
  (``seed``, ``epochs``).

An expert file is written under a temporary name and renamed when complete, so a reader never sees half
an expert and a resumed run trains only the experts whose files are missing.

:class:`StoreExperts` reads a store's experts on demand for the distillation; :func:`spills_trajectories`
says when a run without a store keeps its experts in a temporary one instead of memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from pad_sdk.errors import TrajectoryStoreError

if TYPE_CHECKING:
    from pad_sdk.config import PadConfig

FORMAT = "pad-sdk-trajectories"
VERSION = 1


class TrajectoryStore:
    """Expert trajectories under one URL prefix (local path, ``s3://``, ``memory://``, ...)."""

    def __init__(self, uri: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
        self.uri = uri.rstrip("/")
        self._fs, self._root = fsspec.core.url_to_fs(self.uri, **dict(storage_options or {}))
        self._header: dict[str, Any] | None = None

    # -- header -------------------------------------------------------------------------------
    def initialise(self, header: Mapping[str, Any]) -> None:
        """Create the store, or check that an existing one was written for the same network and data."""
        wanted = {"format": FORMAT, "version": VERSION, **header}
        existing = self._read_header(required=False)
        if existing is not None:
            for key in ("network", "param_shapes", "epochs", "fingerprint"):
                if existing.get(key) != wanted.get(key):
                    raise TrajectoryStoreError(
                        f"trajectory store {self.uri} was written with a different {key} "
                        f"({existing.get(key)!r} != {wanted.get(key)!r}); use a new store URI",
                        uri=self.uri,
                    )
            self._header = existing
            return
        self._fs.makedirs(self._root, exist_ok=True)
        self._write_bytes("store.json", json.dumps(wanted, indent=2, sort_keys=True).encode())
        self._header = wanted

    @property
    def header(self) -> dict[str, Any]:
        header = self._read_header(required=True)
        assert header is not None
        return header

    def _read_header(self, *, required: bool) -> dict[str, Any] | None:
        if self._header is not None:
            return self._header
        path = f"{self._root}/store.json"
        if not self._fs.exists(path):
            if required:
                raise TrajectoryStoreError(f"no trajectory store at {self.uri} (store.json missing)", uri=self.uri)
            return None
        try:
            header = json.loads(self._fs.cat_file(path))
        except (OSError, ValueError) as exc:
            raise TrajectoryStoreError(f"unreadable store.json in {self.uri}: {exc}", uri=self.uri) from exc
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise TrajectoryStoreError(
                f"{self.uri} is not a version-{VERSION} pad-sdk trajectory store", uri=self.uri
            )
        self._header = header
        return header

    # -- experts ------------------------------------------------------------------------------
    @staticmethod
    def _name(index: int) -> str:
        return f"expert-{index:05d}.safetensors"

    def completed(self) -> list[int]:
        """Indices of the experts whose files are complete, sorted."""
        if not self._fs.exists(self._root):
            return []
        self._fs.invalidate_cache(self._root)
        names = [p.rsplit("/", 1)[-1] for p in self._fs.ls(self._root, detail=False)]
        return sorted(
            int(n[len("expert-") : -len(".safetensors")])
            for n in names
            if n.startswith("expert-") and n.endswith(".safetensors")
        )

    def __len__(self) -> int:
        return len(self.completed())

    def save(self, index: int, trajectory: torch.Tensor, *, seed: int) -> None:
        """Write expert ``index``'s trajectory (E + 1, P) atomically."""
        header = self.header
        expected = (header["epochs"] + 1, sum(_prod(s) for s in header["param_shapes"]))
        if tuple(trajectory.shape) != expected:
            raise TrajectoryStoreError(
                f"trajectory of shape {tuple(trajectory.shape)} does not fit store {self.uri} (expects {expected})",
                uri=self.uri,
            )
        payload = st_save(
            {"trajectory": trajectory.detach().to("cpu", torch.float32).contiguous()},
            metadata={"seed": str(seed), "epochs": str(header["epochs"])},
        )
        self._write_bytes(self._name(index), payload)

    def load(self, index: int) -> torch.Tensor:
        """Expert ``index``'s trajectory (E + 1, P), float32 on the CPU."""
        path = f"{self._root}/{self._name(index)}"
        try:
            tensors = st_load(self._fs.cat_file(path))
        except FileNotFoundError as exc:
            raise TrajectoryStoreError(f"expert {index} is missing from {self.uri}", uri=self.uri) from exc
        except Exception as exc:  # safetensors raises its own error type for corrupt files
            raise TrajectoryStoreError(f"expert file {path} is corrupt: {exc}", uri=self.uri) from exc
        return tensors["trajectory"]

    def _write_bytes(self, name: str, payload: bytes) -> None:
        final = f"{self._root}/{name}"
        partial = f"{self._root}/.partial-{name}"
        try:
            with self._fs.open(partial, "wb") as handle:
                handle.write(payload)
            self._fs.mv(partial, final)
        except OSError as exc:
            raise TrajectoryStoreError(f"could not write {name} to {self.uri}: {exc}", uri=self.uri) from exc


def _prod(shape: list[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


@dataclass
class StoreExperts:
    """Experts read from a trajectory store on demand, keeping the last few in memory."""

    store: TrajectoryStore
    count: int
    cache_size: int = 4
    _cache: dict[int, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = self.store.load(index)
        return self._cache[index]


def spills_trajectories(config: PadConfig, size: int) -> bool:
    """Whether trajectories of ``size`` bytes go to a temporary store instead of memory (no store given)."""
    limit = config.compute.spill_trajectories_gib
    return limit is not None and size > limit * 2**30

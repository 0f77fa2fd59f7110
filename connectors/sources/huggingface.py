"""Hugging Face dataset repositories: Parquet shards whose file names say the split.

A repository as the ``datasets`` library (and the Hub's Parquet conversion) writes it, on any fsspec URL::

    REPO/data/train-00000-of-00002.parquet      data/{split}-XXXXX-of-XXXXX.parquet
    REPO/data/train-00001-of-00002.parquet
    REPO/data/test-00000-of-00001.parquet
    REPO/train/0000.parquet                     or {split}/<any>.parquet
    REPO/validation-00000-of-00001.parquet      or {split}-XXXXX-of-XXXXX.parquet at the root

The split of every row comes from its file, so ``split="test"`` reads only the test shards; when no file
names a split, all are ``train`` (as on the Hub). Class names
come from the ``ClassLabel`` feature in the schema's ``huggingface`` metadata; the ``Image`` feature may
hold the encoded bytes or a path to an image file inside the repository. Rows are ordered by split
(train, validation, test, then the others by name), then by file name.
"""

from __future__ import annotations

import re

from connectors.errors import SchemaError, SourceNotFoundError
from connectors.sources.parquet import ParquetSource

PARQUET_EXTENSIONS = (".parquet", ".parq", ".pq")
#: Split names recognised as a bare file or folder name (``test.parquet``, ``validation/``).
KNOWN_SPLITS = ("train", "validation", "valid", "val", "dev", "test", "holdout", "eval")
_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet$")
_ORDER = {"train": 0, "validation": 1, "valid": 1, "val": 1, "dev": 1, "test": 2, "holdout": 2}


def split_of(relative: str) -> str | None:
    """The split that a file's path below the data folder names, or None.

    ``train-00000-of-00001.parquet`` -> train; ``test/anything.parquet`` -> test;
    ``validation.parquet`` or ``validation-part3.parquet`` -> validation.
    """
    parts = relative.split("/")
    match = _SHARD.match(parts[-1])
    if match:
        return match["split"]
    if len(parts) > 1:
        return parts[0]
    stem = parts[-1].rsplit(".", 1)[0]
    head = re.split(r"[-_.]", stem, maxsplit=1)[0]
    return head if head.lower() in KNOWN_SPLITS else None


def looks_like_repository(names: list[str], dirs: list[str]) -> bool:
    """Whether a folder listing (file and sub-folder names) is a Hugging Face repository's root."""
    if any(_SHARD.match(n) for n in names):
        return True
    # train.parquet next to test.parquet: two splits, not two shards of one table
    named = {split_of(n) for n in names if n.lower().endswith(PARQUET_EXTENSIONS)} - {None}
    return len(named) > 1 or "data" in dirs or any(d.lower() in KNOWN_SPLITS for d in dirs)


class HuggingFaceSource(ParquetSource):
    """A Hugging Face dataset repository (see module docstring). Peak memory as :class:`ParquetSource`."""

    format = "huggingface"
    _split_by_file: dict[str, str] | None = None

    def _files(self) -> list[str]:
        if self._split_by_file is None:
            self._split_by_file = self._discover()
        by_split = self._split_by_file
        return sorted(by_split, key=lambda p: (_ORDER.get(by_split[p], 3), by_split[p], p))

    def _file_split(self, path: str) -> str | None:
        if self._split_by_file is None:
            self._files()
        assert self._split_by_file is not None
        return self._split_by_file.get(path)

    def _discover(self) -> dict[str, str]:
        """{shard path: split} for every Parquet file of the repository; refuses gaps and unnamed files."""
        loc = self.location
        with loc.translating():
            if not loc.fs.isdir(loc.path):
                loc.fs.info(loc.path)  # FileNotFoundError -> SourceNotFoundError
                raise SchemaError("a Hugging Face repository is a folder; give its root", uri=loc.uri)
            data = loc.join("data")
            base = data if loc.fs.isdir(data) else loc.path.rstrip("/")
            found = sorted(loc.fs.find(base, withdirs=True, detail=True).items())
        prefix = base.rstrip("/") + "/"
        splits: dict[str, str | None] = {}
        folders: set[str] = set()
        for path, info in found:
            rel = path[len(prefix) :]
            if not rel or any(part.startswith((".", "_")) for part in rel.split("/")):
                continue
            if info.get("type") == "directory":
                if "/" not in rel and rel.lower() in KNOWN_SPLITS:
                    folders.add(rel)
                continue
            if not rel.lower().endswith(PARQUET_EXTENSIONS):
                continue
            splits[path] = split_of(rel)
        if not splits:
            raise SourceNotFoundError(
                "no Parquet shards found (a repository holds data/{split}-XXXXX-of-XXXXX.parquet)", uri=loc.uri
            )
        named = self._name_splits(splits)
        empty = sorted(folders - set(named.values()))
        if empty:
            raise SourceNotFoundError(
                f"split {empty[0]!r} has no shards (its folder holds no Parquet file)",
                uri=loc.uri,
                file=loc.display(prefix + empty[0]),
            )
        self._check_complete(named)
        return named

    def _name_splits(self, splits: dict[str, str | None]) -> dict[str, str]:
        """As the Hub does: files that name no split are all ``train`` when no file names one; a mix of
        named and unnamed files is refused (an unnamed file could belong to any split)."""
        unnamed = sorted(p for p, split in splits.items() if split is None)
        if len(unnamed) == len(splits):
            return dict.fromkeys(splits, "train")
        if unnamed:
            raise SchemaError(
                "cannot tell this file's split; name shards {split}-00000-of-00001.parquet or put them in a "
                "{split}/ folder",
                uri=self.location.uri,
                file=self.location.display(unnamed[0]),
            )
        return {p: split for p, split in splits.items() if split is not None}

    def _check_complete(self, splits: dict[str, str]) -> None:
        """Every ``{split}-XXXXX-of-NNNNN`` series must hold all N shards (a missing one loses rows)."""
        series: dict[tuple[str, str, int], set[int]] = {}
        for path in splits:
            folder, _, name = path.rpartition("/")
            match = _SHARD.match(name)
            if match:
                series.setdefault((folder, match["split"], int(match["total"])), set()).add(int(match["index"]))
        for (folder, split, total), indices in sorted(series.items()):
            missing = sorted(set(range(total)) - indices)
            if missing:
                name = f"{folder}/{split}-{missing[0]:05d}-of-{total:05d}.parquet"
                raise SourceNotFoundError(
                    f"split {split!r} is missing {len(missing)} of its {total} shards",
                    uri=self.location.uri,
                    file=self.location.display(name),
                )

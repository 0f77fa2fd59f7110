"""Image-folder trees, as torchvision's ``ImageFolder``: ``root/<class>/<file>.png``.

With ``split_column`` set, the first level is the split: ``root/<split>/<class>/<file>``. Class names
are the sorted folder names. Files are listed once (one listing call, no per-file metadata request);
images are fetched and decoded batch by batch (``fs.cat`` on a batch, concurrent on S3).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from connectors._fs import fingerprint
from connectors.errors import DataValidationError, MemoryLimitError, SchemaError, SourceNotFoundError
from connectors.schema import ScanStats
from connectors.sources._decode import decode_images
from connectors.sources._limits import check_memory
from connectors.sources.base import RawChunk, ScanResult, Source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageFolderSource(Source):
    """An image-folder tree (see module docstring)."""

    format = "imagefolder"
    _listing: tuple[list[str], np.ndarray, np.ndarray | None, dict[str, Any]] | None = None

    def _list(self) -> tuple[list[str], np.ndarray, np.ndarray | None, dict[str, Any]]:
        """(sorted file paths, class name per file, split per file or None, fs infos)."""
        if self._listing is None:
            loc, opts = self.location, self.options
            if opts.group_column is not None:
                raise SchemaError(
                    "an image folder has no group column", uri=loc.uri, column=opts.group_column
                )
            with loc.translating():
                if not loc.fs.isdir(loc.path):
                    raise SourceNotFoundError("image folder not found (not a directory)", uri=loc.uri)
                infos = loc.fs.find(loc.path, detail=True)
            root = loc.path.rstrip("/") + "/"
            depth = 3 if opts.split_column else 2
            paths, parts = [], []
            for path in sorted(infos):
                rel = path[len(root) :].split("/")
                if (
                    len(rel) == depth
                    and path.lower().endswith(IMAGE_EXTENSIONS)
                    and not rel[-1].startswith(".")
                ):
                    paths.append(path)
                    parts.append(rel)
            if not paths:
                raise SourceNotFoundError(
                    f"no image files found {'<split>/' * (depth == 3)}<class>/<file> below the folder",
                    uri=loc.uri,
                )
            classes = np.array([p[-2] for p in parts])
            splits = np.array([p[0] for p in parts]) if opts.split_column else None
            self._listing = (paths, classes, splits, infos)
        return self._listing

    def _scan(self) -> ScanResult:
        loc = self.location
        paths, classes, splits, infos = self._list()
        stats = ScanStats()
        stats.add(classes, splits, uri=loc.uri, column="<class folder>")
        first = next(self._iter_raw(1, 0, 1, None))
        with loc.translating():
            digest, stored = fingerprint(loc.fs, paths, loc.path, infos)
        return ScanResult(stats, tuple(first.images.shape[1:]), first.images.dtype.name, stored, digest)

    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        loc, limit = self.location, self.options.memory_limit
        paths, classes, splits, infos = self._list()
        for s in range(start, stop, batch_size):
            chunk = paths[s : min(stop, s + batch_size)]
            # Each file is fetched whole: its listed size counts before any byte is read.
            sizes = [int(infos[p].get("size") or 0) for p in chunk]
            check_memory(sum(sizes), limit, f"{len(chunk)} image files", uri=loc.uri, file=loc.display(chunk[0]))
            with loc.translating(chunk[0]):
                blobs = loc.fs.cat(chunk, on_error="raise")
            row_ids = np.arange(s, s + len(chunk), dtype=np.int64)
            try:
                images = decode_images(
                    [blobs[p] for p in chunk], row_ids, uri=loc.uri, file=None, column="<image file>", max_bytes=limit
                )
            except (DataValidationError, MemoryLimitError) as err:
                # Re-raise naming the exact file of the bad row (each row is its own file here).
                bad = paths[err.row] if err.row is not None else chunk[0]
                err._name_file(loc.display(bad))
                raise
            yield RawChunk(
                images,
                classes[s : s + len(chunk)],
                None,
                None if splits is None else splits[s : s + len(chunk)],
                row_ids,
                loc.display(chunk[0]),
            )

"""Guards for sizes that a file declares (header shapes, zip entry lengths, image dimensions).

A reader must never allocate what a header claims before checking it against two things: the bytes that
are actually there (a 100-byte IDX file cannot hold 60 images of 65535 x 65535), and the memory limit of
the source (one allocation of a legitimate but huge file). Both checks run before the allocation and name
the file and the two sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from connectors.errors import DeclaredSizeError, MemoryLimitError

#: Largest single buffer a reader allocates (a batch, a label array, one decoded image), in bytes.
DEFAULT_MEMORY_LIMIT = 2 * 1024**3

# Deflate (gzip, zip, PNG) expands at most 1032:1; more declared than that cannot be present.
DEFLATE_MAX_RATIO = 1032
DEFLATE_SLACK = 1024


def nbytes(shape: Sequence[int], itemsize: int) -> int:
    """Bytes of an array of ``shape`` (Python ints: no overflow, whatever a header declares)."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def deflate_capacity(compressed: int) -> int:
    """The most bytes that ``compressed`` bytes of deflate data can expand to."""
    return int(compressed) * DEFLATE_MAX_RATIO + DEFLATE_SLACK


def check_present(
    declared: int,
    present: int,
    what: str,
    *,
    uri: str | None,
    file: str | None = None,
    column: str | None = None,
) -> None:
    """Raise DeclaredSizeError when a file declares more bytes than are present."""
    if declared > present:
        raise DeclaredSizeError(what, declared=declared, present=present, uri=uri, file=file, column=column)


def check_memory(
    requested: int,
    limit: int,
    what: str,
    *,
    uri: str | None,
    file: str | None = None,
    row: int | None = None,
    column: str | None = None,
) -> None:
    """Raise MemoryLimitError when one allocation of ``requested`` bytes would exceed ``limit``."""
    if requested > limit:
        raise MemoryLimitError(
            what, requested=requested, limit=limit, uri=uri, file=file, row=row, column=column
        )

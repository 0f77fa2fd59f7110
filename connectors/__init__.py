"""Streaming readers and verified writers for labelled image datasets in object storage.

Read any fsspec URL (local, ``s3://``, ``memory://``, ...) in Parquet, Hugging Face repository, WebDataset,
image-folder, IDX or npz layout in bounded memory; write condensed sets as Parquet + preview + a manifest
that readers verify.
Neither torch nor Ray is imported here (Ray only inside :func:`to_ray_dataset`).
"""

from connectors._open import FORMATS, open_source
from connectors.errors import (
    AccessDeniedError,
    ConnectorError,
    CorruptDataError,
    DataValidationError,
    DeclaredSizeError,
    EmptyDatasetError,
    EndpointUnreachableError,
    ExportConflictError,
    ExportExistsError,
    ExportVerificationError,
    InsufficientDataError,
    InvalidArgumentError,
    MemoryLimitError,
    MissingBackendError,
    SchemaError,
    SourceNotFoundError,
    StorageTimeoutError,
)
from connectors.export import CondensedExport, export_exists, read_condensed, write_condensed
from connectors.ray_data import to_ray_dataset
from connectors.schema import Batch, SourceSchema
from connectors.sources.base import Source
from connectors.split import SplitPlan, require_per_class, stratified_split

__all__ = [
    "FORMATS",
    "AccessDeniedError",
    "Batch",
    "CondensedExport",
    "ConnectorError",
    "CorruptDataError",
    "DataValidationError",
    "DeclaredSizeError",
    "EmptyDatasetError",
    "EndpointUnreachableError",
    "ExportConflictError",
    "ExportExistsError",
    "ExportVerificationError",
    "InsufficientDataError",
    "InvalidArgumentError",
    "MemoryLimitError",
    "MissingBackendError",
    "SchemaError",
    "Source",
    "SourceNotFoundError",
    "SourceSchema",
    "SplitPlan",
    "StorageTimeoutError",
    "export_exists",
    "open_source",
    "read_condensed",
    "require_per_class",
    "stratified_split",
    "to_ray_dataset",
    "write_condensed",
]

"""Scale-out on Dask: assign a Parquet catalogue, and train the batch map, across a cluster.

>>> summary = assign_parquet(som, "survey/", "survey_cells/", client="tcp://head:8786",
...                          cell_stats=stats[["z_median", "covered"]])
>>> som = fit_distributed(SOM(75, 150, random_state=1), "deep/", client=client,
...                       feature_columns=["u-g", "g-r", "r-i", "i-z", "z-y", "y-j", "j-h"])

Both work partition by partition, so memory per worker is bounded by one partition, and
both reproduce the single-process results: assignment exactly, training within float
rounding (the per-cell sums of the batch map are added in a different order). The map
travels to the workers once per run, as its versioned ``SOM.to_bytes`` form.

- ``assign``: a ``dask.dataframe`` pipeline (``dd.from_map`` over runs of row groups,
  ``map_partitions``, a write task per partition), committed by renaming a directory.
- ``train``: ``dask.bag`` partitions of features; each epoch's ``SOM.batch_sums`` and the
  final ``SOM.quality_sums`` added by ``Bag.reduction`` in a fixed tree.
- ``occupation``: a survey's per-cell counts (``som.occupation``), partitions' histograms
  added by ``Bag.reduction``.
- ``hats``: HATS catalogues read and written through the ``hats`` package.

Without a client (and no default one) everything runs in this process on dask's
synchronous scheduler. Paths must be visible to every worker under the same name.
"""

from ._common import (
    CELL_COLUMN,
    DEFAULT_ROWS_PER_TASK,
    DISTANCE_COLUMN,
    INIT_SAMPLE_SIZE,
    MANIFEST,
    TRUST_COLUMNS,
    PartitionError,
)
from ._parquet import list_parquet_files
from .assign import assign_parquet
from .occupation import occupation_parquet
from .train import fit_distributed

__all__ = [
    "CELL_COLUMN",
    "DEFAULT_ROWS_PER_TASK",
    "DISTANCE_COLUMN",
    "INIT_SAMPLE_SIZE",
    "MANIFEST",
    "TRUST_COLUMNS",
    "PartitionError",
    "assign_parquet",
    "fit_distributed",
    "list_parquet_files",
    "occupation_parquet",
]

"""Helpers that turn Arrow schemas and frames into what Dagster shows and what the IO manager writes."""

import datetime as dt
from collections.abc import Iterable
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from crm_pipeline.storage.io_manager import table_schema_from_arrow

# the Dagster column schema (shown in the UI) of an Arrow schema
column_schema = table_schema_from_arrow


def arrow_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """`frame` as an Arrow table with exactly `schema` (column order, types, also for empty or all-null columns)."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing} of its declared schema")
    columns = frame[schema.names]
    try:
        table = pa.Table.from_pandas(columns, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # an empty or all-null column has whatever dtype the pandas operation that made it produced (an empty
        # `.dt.hour` is int32, an all-NaN column float64), which Arrow cannot always cast to the declared type;
        # its values say nothing, so it is written as typed nulls. Any other column that fails still raises.
        nulls = [name for name in schema.names if not columns[name].notna().any()]
        table = pa.Table.from_pandas(columns.assign(**{name: pd.Series(None, index=columns.index, dtype=object)
                                                       for name in nulls}),
                                     schema=schema, preserve_index=False)
    return table.replace_schema_metadata(None)


def string_array(values: pd.Series) -> pa.Array:
    """A text column as one Arrow string array (zero-copy for Arrow-backed pandas strings), for Arrow's hash
    lookups (`is_in`, `index_in`), which are several times faster than pandas' on strings."""
    try:
        array = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not text (numbers, mixed): as pandas' string dtype
        array = pa.array(values.astype("string").to_numpy(dtype=object, na_value=None), type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == pa.string() else array.cast(pa.string())


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    """The day a daily-partitioned run materialises."""
    return dt.date.fromisoformat(context.partition_key)


def latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Iterable[str]
                    ) -> dict[str, dict[str, Any]]:
    """{partition: the metadata values of its latest materialisation}, for the partitions that have one."""
    out: dict[str, dict[str, Any]] = {}
    for partition in partitions:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
        if records and records[0].asset_materialization is not None:
            out[partition] = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
    return out

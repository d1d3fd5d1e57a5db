"""The pipeline's one IO manager: DataFrames as Parquet files in a Hive layout, local or on S3.

Layout (``<root>`` is ``ParquetIOManager.base_path``, a local folder or ``s3://bucket/prefix``)::

    <root>/<asset key path>/date=YYYY-MM-DD/part.parquet   # a partitioned asset, one file per partition
    <root>/<asset key path>/part.parquet                   # an unpartitioned asset

so ``pandas.read_parquet("<root>/ingest/events")`` and
``pyarrow.dataset.dataset("<root>/ingest/events", partitioning="hive")`` read a whole history, with the
day coming back as a ``date`` column taken from the folder names.

Attaching an explicit Arrow schema to an output (recommended for every asset whose columns can be all
null on some day, and binding for KPI outputs)::

    @dg.asset(partitions_def=daily, metadata=arrow_schema_metadata(KPI_SCHEMA))
    def kpi_x(...) -> pd.DataFrame: ...

``arrow_schema_metadata(schema)`` returns two definition-metadata entries: ``"arrow_schema"``, the schema
in Arrow's IPC serialisation, base64-encoded (a plain string, so it is valid Dagster metadata and survives
the definitions snapshot; a raw ``pyarrow.Schema`` is accepted too, but Dagster warns that arbitrary
metadata objects are deprecated), and ``"dagster/column_schema"``, the columns with their Arrow types as
the UI shows them. For a ``multi_asset``, put the same entries in ``AssetOut(metadata=...)``.
"""

import base64
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from upath import UPath

from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs

ARROW_SCHEMA_KEY = "arrow_schema"
PARTITION_COLUMN = "date"
FILE_STEM = "part"

_WindowReading = tuple[list[str], list[pa.Table], list[str]]


def table_schema_from_arrow(schema: pa.Schema) -> dg.TableSchema:
    """A Dagster ``TableSchema`` with one column per Arrow field: name and Arrow type string."""
    return dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema])


def encode_arrow_schema(schema: pa.Schema) -> str:
    """``schema`` as a metadata-safe string: Arrow IPC serialisation, base64 (lossless, field metadata kept)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_arrow_schema(value: Any) -> pa.Schema:
    """The ``pyarrow.Schema`` held by an ``"arrow_schema"`` metadata value (encoded string or a raw schema)."""
    if isinstance(value, pa.Schema):
        return value
    if isinstance(value, dg.TextMetadataValue):
        value = value.value
    if isinstance(value, str):
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(value)))
    raise TypeError(
        f"metadata '{ARROW_SCHEMA_KEY}' must be a pyarrow.Schema or encode_arrow_schema(...), got {type(value)}"
    )


def arrow_schema_metadata(schema: pa.Schema) -> dict[str, Any]:
    """Definition metadata for an asset (or ``AssetOut``) whose output is written with ``schema``."""
    return {
        ARROW_SCHEMA_KEY: encode_arrow_schema(schema),
        "dagster/column_schema": table_schema_from_arrow(schema),
    }


def _typing_type(context: dg.InputContext) -> Any:
    try:
        return context.dagster_type.typing_type
    except Exception:  # no op definition (e.g. a hand-built InputContext): treat as unannotated
        return Any


def _columns(context: dg.InputContext) -> list[str] | None:
    """`AssetIn(metadata={"columns": [...]})` reads only those columns (identity needs 5 of 22 event columns)."""
    columns = (context.definition_metadata or {}).get("columns")
    return list(columns) if columns else None


def _wants_dict(context: dg.InputContext) -> bool:
    tt = _typing_type(context)
    return tt in (dict, Mapping) or typing.get_origin(tt) in (dict, Mapping)


def _is_optional(context: dg.InputContext) -> bool:
    # Dagster normalises both `Optional[pd.DataFrame]` and `pd.DataFrame | None` to `typing.Optional[...]`
    tt = _typing_type(context)
    return typing.get_origin(tt) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tt)


class HiveParquetIOManager(dg.UPathIOManager):
    """Reads and writes pandas DataFrames / Arrow tables as Parquet in a Hive layout (see the module doc).

    **Outputs** (what an asset may return):

    - a ``pandas.DataFrame`` (its index is dropped) or a ``pyarrow.Table``: written to the path of the
      run's single partition, or to ``<asset>/part.parquet`` for an unpartitioned asset;
    - a ``dict[partition_key, DataFrame | Table]`` for a partitioned asset: one file per key. This is how a
      run covering several partitions (``BackfillPolicy.single_run()``) returns its days. The keys must be
      exactly the run's partition keys (return an empty frame for a day without rows); every day is
      converted and checked before the first file is written.

    Every table is converted to Arrow and, if the output's definition metadata holds ``"arrow_schema"``
    (see ``arrow_schema_metadata``), its columns are selected in the schema's order and cast to it, so
    all-null columns keep their type; a column missing or extra with respect to the schema, or a failed cast, is a
    ``ValueError`` and nothing is written. Without a schema, all-null columns are written with Arrow type
    ``null`` and a warning is logged. A partitioned output must not contain a ``date`` column: the day is
    the folder name only (Hive convention); such a frame raises ``ValueError``. Files are written atomically
    (``fs.write_table_atomic``) and deterministically (same table, same bytes); re-materialising replaces
    the file. Metadata: ``dagster/row_count`` (the total over all days for a multi-partition output, with
    ``partition_row_counts`` per day), ``dagster/column_schema`` (Arrow types) and ``dagster/uri`` (the file,
    or the asset folder for a multi-partition output, with ``partition_uris``).

    **Inputs** (what a downstream parameter receives), decided in this order:

    1. Annotated ``dict[str, pd.DataFrame]``: always a dict ``{partition_key: DataFrame}`` of the mapped
       upstream partitions that exist, in key order (possibly empty or with one entry); missing days are
       skipped and logged. The frames have no ``date`` column.
    2. A *window* input: one concatenated ``DataFrame`` of the existing days, in day order, with a ``date``
       column (string ``YYYY-MM-DD``) appended last. An input is a window when its partition mapping is a
       ``TimeWindowPartitionMapping`` with ``start_offset != end_offset`` (even when clipped to one or zero
       days at the start of the partitions), an ``AllPartitionMapping`` or an unpartitioned downstream
       asset, whenever more than one upstream partition is mapped (e.g. a range run), or when the input says
       so with ``AssetIn(metadata={"window": True})`` (a state as of an earlier day, D-30, which does not
       exist yet in the first 30 days: an empty frame rather than ``None``). Missing days
       are skipped and logged (set ``AssetIn(metadata={"allow_missing_partitions": False})`` to raise
       instead). When no day of the window exists, the result is an empty frame with the columns of the
       asset's latest existing file plus ``date``, or, if the asset has no file at all, an empty frame
       with only the ``date`` column. A window input is never ``None``.
    3. Otherwise a *single* partition (identity mapping, previous-day self-dependency
       ``TimeWindowPartitionMapping(-1, -1)``, ...) or an unpartitioned upstream: the ``DataFrame`` as
       written. If the file is missing (or the mapping yields no partition, e.g. the previous day of the
       first partition): ``None`` when the parameter is annotated ``Optional[pd.DataFrame]`` /
       ``pd.DataFrame | None``, else ``FileNotFoundError`` naming the path.

    In every case ``AssetIn(metadata={"columns": [...]})`` reads only those columns.

    ``storage_options`` of the base class is never used (broken with universal-pathlib 0.3); all I/O goes
    through ``path.fs`` (fsspec) and ``path.path``.
    """

    extension = ".parquet"

    def __init__(self, base_path: UPath) -> None:
        super().__init__(base_path=base_path)
        self.root = base_path

    # ----------------------------------------------------------------------------------------- paths
    def get_path_for_partition(
        self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str
    ) -> UPath:
        # the base class appends `extension`; `path_for` below does the same
        if "/" in partition or partition in ("", ".", ".."):
            raise ValueError(f"partition key {partition!r} cannot be used as a folder name")
        return path / f"{PARTITION_COLUMN}={partition}" / FILE_STEM

    def asset_dir(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        """``<root>/<asset key path>`` (or ``<root>/<run id>/<step>/<output>`` for an op output)."""
        parts = context.asset_key.path if context.has_asset_key else context.get_identifier()
        return self.root.joinpath(*parts)

    def path_for(self, context: dg.InputContext | dg.OutputContext, partition_key: str | None) -> UPath:
        """The file of one partition (``partition_key=None``: of an unpartitioned asset)."""
        folder = self.asset_dir(context)
        if partition_key is None:
            return folder / f"{FILE_STEM}{self.extension}"
        path = self.get_path_for_partition(context, folder, partition_key)
        return path.with_name(path.name + str(self.extension))

    def has_output(self, context: dg.OutputContext) -> bool:
        if context.has_asset_partitions:
            return all(self.path_exists(self.path_for(context, k)) for k in context.asset_partition_keys)
        return self.path_exists(self.path_for(context, None))

    # ---------------------------------------------------------------------------------------- writes
    def _to_table(self, context: dg.OutputContext, obj: Any, partitioned: bool, where: str) -> pa.Table:
        if isinstance(obj, pd.DataFrame):
            table = pa.Table.from_pandas(obj, preserve_index=False)
        elif isinstance(obj, pa.Table):
            table = obj
        else:
            raise TypeError(
                f"{where}: {type(self).__name__} writes pandas DataFrames or pyarrow Tables (or, for a "
                f"partitioned asset, a dict of them keyed by partition key), got {type(obj).__name__}"
            )
        if partitioned and PARTITION_COLUMN in table.column_names:
            raise ValueError(
                f"{where}: the output has a '{PARTITION_COLUMN}' column, but the partition key is stored as "
                f"the folder name '{PARTITION_COLUMN}=YYYY-MM-DD' (Hive layout); a column of the same name "
                "inside the file breaks pandas/pyarrow reads of the dataset. Drop or rename the column."
            )
        encoded = (context.definition_metadata or {}).get(ARROW_SCHEMA_KEY)
        if encoded is None:
            nulls = [f.name for f in table.schema if pa.types.is_null(f.type)]
            if nulls:
                context.log.warning(
                    f"{where}: columns {nulls} are all null and have no type; attach an Arrow schema "
                    f"(metadata '{ARROW_SCHEMA_KEY}') so that readers of the whole history can merge them"
                )
            return table
        schema = decode_arrow_schema(encoded)
        missing = [n for n in schema.names if n not in table.column_names]
        extra = [n for n in table.column_names if n not in schema.names]
        if missing or extra:
            raise ValueError(
                f"{where}: columns do not match the output's Arrow schema: missing {missing}, extra {extra}"
            )
        try:
            return table.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise ValueError(f"{where}: cannot cast the output to its Arrow schema: {e}") from e

    def _write(self, context: dg.OutputContext, table: pa.Table, path: UPath) -> None:
        context.log.debug(self.get_writing_output_log_message(path))
        fs.write_table_atomic(path.fs, path.path, table)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        table = self._to_table(context, obj, context.has_asset_partitions, str(path))
        self._write(context, table, path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        # Overridden as a whole: the base class rejects outputs covering several partitions (single-run
        # backfills), and its unpartitioned path `<asset>.parquet` is not our `<asset>/part.parquet`.
        if isinstance(obj, Mapping):
            self._handle_multi_partition_output(context, obj)
            return
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) != 1:
                raise TypeError(
                    f"{context.asset_key.to_user_string()}: this run covers {len(keys)} partitions "
                    f"({keys[0]} .. {keys[-1]}); return a dict {{partition_key: DataFrame}} with one frame per day"
                )
            path = self.path_for(context, keys[0])
        else:
            path = self.path_for(context, None)
        table = self._to_table(context, obj, context.has_asset_partitions, str(path))
        self._write(context, table, path)
        context.add_output_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(table.num_rows),
                "dagster/column_schema": table_schema_from_arrow(table.schema),
                "dagster/uri": dg.MetadataValue.text(str(path)),
            }
        )

    def _handle_multi_partition_output(self, context: dg.OutputContext, obj: Mapping[str, Any]) -> None:
        name = context.asset_key.to_user_string() if context.has_asset_key else "output"
        if not context.has_asset_partitions:
            raise TypeError(f"{name}: a dict output is only supported for partitioned assets")
        keys = list(context.asset_partition_keys)
        missing = sorted(set(keys) - set(obj))
        extra = sorted(set(obj) - set(keys))
        if missing or extra:
            raise ValueError(
                f"{name}: the dict output must have exactly the run's partition keys; missing {missing}, "
                f"extra {extra} (return an empty frame for a day without rows)"
            )
        paths = {k: self.path_for(context, k) for k in keys}
        # convert and validate every day before writing the first file
        tables = {k: self._to_table(context, obj[k], True, str(paths[k])) for k in keys}
        for k in keys:
            self._write(context, tables[k], paths[k])
        first = tables[keys[0]]
        context.add_output_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(sum(t.num_rows for t in tables.values())),
                "dagster/column_schema": table_schema_from_arrow(first.schema),
                "dagster/uri": dg.MetadataValue.text(str(self.asset_dir(context))),
                "partition_row_counts": dg.MetadataValue.json({k: tables[k].num_rows for k in keys}),
                "partition_uris": dg.MetadataValue.json({k: str(paths[k]) for k in keys}),
            }
        )

    # ----------------------------------------------------------------------------------------- reads
    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return fs.read_table(path.fs, path.path, _columns(context)).to_pandas()

    def _explicit_partition_mapping(self, context: dg.InputContext) -> dg.PartitionMapping | None:
        # Dagster 1.13 has no public accessor for the partition mapping of an input; the downstream
        # AssetsDefinition is only reachable through the (non-public) step context. Its
        # `get_partition_mapping` is public. Without it we fall back to counting the mapped keys.
        try:
            assets_def = context.step_context.assets_def
        except Exception:
            return None
        if assets_def is None:
            return None
        return assets_def.get_partition_mapping(context.asset_key)

    def _is_window(self, context: dg.InputContext, keys: list[str]) -> bool:
        if len(keys) > 1 or (context.definition_metadata or {}).get("window"):
            return True
        mapping = self._explicit_partition_mapping(context)
        if isinstance(mapping, dg.TimeWindowPartitionMapping):
            return mapping.start_offset != mapping.end_offset
        if isinstance(mapping, dg.AllPartitionMapping):
            return True
        # an unpartitioned downstream asset reads all partitions of a partitioned upstream
        return mapping is None and not context.has_partition_key and context.has_asset_key

    def _read_partitions(self, context: dg.InputContext, keys: list[str], strict: bool) -> _WindowReading:
        found: list[str] = []
        tables: list[pa.Table] = []
        missing: list[str] = []
        for key in keys:
            path = self.path_for(context, key)
            try:
                context.log.debug(self.get_loading_input_partition_log_message(path, key))
                tables.append(fs.read_table(path.fs, path.path, _columns(context)))
                found.append(key)
            except FileNotFoundError as e:
                if strict:
                    raise FileNotFoundError(
                        f"partition {key} of {context.asset_key.to_user_string()}: {path}"
                    ) from e
                missing.append(key)
        if missing:
            context.log.warning(
                f"{context.asset_key.to_user_string()}: skipped {len(missing)} of {len(keys)} partitions "
                f"that do not exist: {', '.join(missing)}"
            )
        return found, tables, missing

    def _latest_existing_schema(self, context: dg.InputContext) -> pa.Schema | None:
        folder = self.asset_dir(context)
        pattern = f"{folder.path.rstrip('/')}/{PARTITION_COLUMN}=*/{FILE_STEM}{self.extension}"
        files = sorted(folder.fs.glob(pattern))
        if not files:
            return None
        with folder.fs.open(files[-1], "rb") as f:
            return pq.read_schema(f)

    def _load_window(self, context: dg.InputContext, keys: list[str]) -> pd.DataFrame:
        strict = (context.definition_metadata or {}).get("allow_missing_partitions") is False
        found, tables, _ = self._read_partitions(context, keys, strict)
        if not tables:
            schema = self._latest_existing_schema(context)
            if schema is None:
                context.log.warning(
                    f"{context.asset_key.to_user_string()}: no partition file exists; returning an empty frame"
                )
                return pd.DataFrame({PARTITION_COLUMN: pd.Series([], dtype="str")})
            empty = schema.empty_table().append_column(PARTITION_COLUMN, pa.array([], pa.string()))
            return empty.to_pandas()
        with_date = [
            t.append_column(PARTITION_COLUMN, pa.array([k] * t.num_rows, pa.string()))
            for k, t in zip(found, tables, strict=True)
        ]
        return pa.concat_tables(with_date, promote_options="permissive").to_pandas()

    def _load_single(self, context: dg.InputContext, path: UPath | None) -> pd.DataFrame | None:
        name = context.asset_key.to_user_string() if context.has_asset_key else context.name
        if path is None:
            if _is_optional(context):
                return None
            raise FileNotFoundError(
                f"input '{context.name}': no partition of {name} is mapped to this run (e.g. the previous "
                "day of the first partition); annotate the parameter Optional[pd.DataFrame] to receive None"
            )
        try:
            context.log.debug(self.get_loading_input_log_message(path))
            return self.load_from_path(context, path)
        except FileNotFoundError as e:
            if _is_optional(context):
                context.log.info(f"input '{context.name}': {path} does not exist; passing None")
                return None
            raise FileNotFoundError(f"input '{context.name}': {name} has no file at {path}") from e

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_partitions:
            if _wants_dict(context):
                raise TypeError(
                    f"input '{context.name}' is annotated as a dict, but its upstream is not partitioned"
                )
            return self._load_single(context, self.path_for(context, None))
        keys = list(context.asset_partition_keys)
        if _wants_dict(context):
            strict = (context.definition_metadata or {}).get("allow_missing_partitions") is False
            found, tables, _ = self._read_partitions(context, keys, strict)
            return {k: t.to_pandas() for k, t in zip(found, tables, strict=True)}
        if self._is_window(context, keys):
            return self._load_window(context, keys)
        return self._load_single(context, self.path_for(context, keys[0]) if keys else None)


def _local_or_url(base_path: str) -> str:
    if "://" in base_path:
        return base_path.rstrip("/")
    return str(Path(base_path).expanduser().resolve())


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Hive-layout Parquet storage for every asset (see ``HiveParquetIOManager`` for the rules).

    ``base_path``: a local folder (relative paths are resolved against the working directory) or an
    fsspec URL such as ``s3://bucket/prefix``. ``storage_options``: passed to fsspec / UPath, e.g.
    ``{"endpoint_url": "http://minio:9000", "key": "...", "secret": "..."}`` for an S3-compatible store.
    """

    base_path: str
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ParquetIOManager":
        """From ``crm_pipeline.settings.Settings``: its warehouse root and storage options."""
        return cls(base_path=settings.warehouse_root, storage_options=dict(settings.storage_options))

    def create_io_manager(self, context: dg.InitResourceContext) -> HiveParquetIOManager:
        return HiveParquetIOManager(base_path=UPath(_local_or_url(self.base_path), **self.storage_options))

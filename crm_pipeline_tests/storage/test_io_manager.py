"""The Parquet IO manager against real files (local disk and a moto S3 server)."""

import os
from pathlib import Path
from typing import Optional

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from crm_pipeline.storage import fs as fs_module
from crm_pipeline.storage.io_manager import (
    ParquetIOManager,
    arrow_schema_metadata,
    decode_arrow_schema,
    encode_arrow_schema,
)
from crm_pipeline_tests.conftest import S3Server

DAILY = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_date="2026-10-10")
SCHEMA = pa.schema([("user", pa.string()), ("n", pa.int64()), ("channel", pa.string())])
FRAMES = {
    "2026-10-01": pd.DataFrame({"user": ["a", "b"], "n": [1, 2], "channel": ["web", None]}),
    # an all-null column: without the schema it would be written as type null
    "2026-10-02": pd.DataFrame({"user": ["c"], "n": [3], "channel": [None]}),
    "2026-10-03": pd.DataFrame({"user": ["d", "e", "f"], "n": [4, 5, 6], "channel": ["app", "web", "app"]}),
}


def _io(root: Path | str, **storage_options: object) -> dict[str, ParquetIOManager]:
    return {"io_manager": ParquetIOManager(base_path=str(root), storage_options=storage_options)}


@dg.asset(key=["ingest", "events"], partitions_def=DAILY, metadata=arrow_schema_metadata(SCHEMA))
def events(context: dg.AssetExecutionContext) -> pd.DataFrame:
    # a fresh index that is not 0..n-1: it must not end up in the file
    return FRAMES[context.partition_key].set_axis(range(10, 10 + len(FRAMES[context.partition_key])))


def _materialize_events(root: Path | str, days: list[str], **storage_options: object) -> None:
    for day in days:
        assert dg.materialize([events], partition_key=day, resources=_io(root, **storage_options)).success


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- writes
def test_arrow_schema_metadata_round_trips_losslessly() -> None:
    schema = pa.schema(
        [
            pa.field("ts", pa.timestamp("us", tz="UTC"), metadata={b"doc": b"event time"}),
            ("v", pa.decimal128(12, 2)),
        ],
        metadata={b"kpi": b"x"},
    )
    encoded = arrow_schema_metadata(schema)["arrow_schema"]
    assert isinstance(encoded, str)
    decoded = decode_arrow_schema(encoded)
    assert decoded.equals(schema, check_metadata=True)
    assert decode_arrow_schema(dg.MetadataValue.text(encode_arrow_schema(schema))).equals(schema)
    assert decode_arrow_schema(schema) is schema


def test_paths_and_metadata_for_partitioned_and_unpartitioned_assets(tmp_path: Path) -> None:
    @dg.asset(key=["ref", "channels"])
    def channels() -> pa.Table:
        return pa.table({"channel": ["web", "app"], "date": ["x", "y"]})  # `date` is fine unpartitioned

    result = dg.materialize([events, channels], partition_key="2026-10-01", resources=_io(tmp_path))
    assert result.success
    assert _files(tmp_path) == ["ingest/events/date=2026-10-01/part.parquet", "ref/channels/part.parquet"]

    meta = result.asset_materializations_for_node("ingest__events")[0].metadata
    assert meta["dagster/row_count"].value == 2
    assert meta["dagster/uri"].value == str(tmp_path / "ingest/events/date=2026-10-01/part.parquet")
    columns = meta["dagster/column_schema"].value.columns
    assert [(c.name, c.type) for c in columns] == [("user", "string"), ("n", "int64"), ("channel", "string")]

    written = pq.read_table(tmp_path / "ingest/events/date=2026-10-01/part.parquet")
    assert written.schema.names == ["user", "n", "channel"]  # no index column, no date column
    assert written.to_pydict() == {"user": ["a", "b"], "n": [1, 2], "channel": ["web", None]}


def test_whole_history_reads_with_pyarrow_and_pandas(tmp_path: Path) -> None:
    _materialize_events(tmp_path, list(FRAMES))
    root = tmp_path / "ingest" / "events"
    for day in FRAMES:
        file_schema = pq.read_schema(root / f"date={day}" / "part.parquet")
        assert "date" not in file_schema.names
        assert file_schema.field("channel").type == pa.string()  # also on the all-null day

    table = ds.dataset(root, partitioning="hive").to_table()
    assert table.num_rows == 6
    frame = pd.read_parquet(root).sort_values("n").reset_index(drop=True)
    assert frame["user"].tolist() == ["a", "b", "c", "d", "e", "f"]
    assert frame["date"].astype(str).tolist() == ["2026-10-01"] * 2 + ["2026-10-02"] + ["2026-10-03"] * 3


def test_rematerialising_writes_identical_bytes_and_one_file(tmp_path: Path) -> None:
    path = tmp_path / "ingest/events/date=2026-10-03/part.parquet"
    _materialize_events(tmp_path, ["2026-10-03"])
    first = path.read_bytes()
    _materialize_events(tmp_path, ["2026-10-03"])
    assert path.read_bytes() == first
    assert _files(tmp_path) == ["ingest/events/date=2026-10-03/part.parquet"]


def test_failure_midway_keeps_previous_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ingest/events/date=2026-10-01/part.parquet"
    _materialize_events(tmp_path, ["2026-10-01"])
    before = path.read_bytes()

    real_replace = os.replace

    def crash_before_rename(src: str, dst: str) -> None:
        if str(dst).endswith("part.parquet"):
            assert Path(src).stat().st_size > 0  # the temporary file was fully written
            raise OSError("disk vanished")
        real_replace(src, dst)

    monkeypatch.setattr(fs_module.os, "replace", crash_before_rename)
    FRAMES_CHANGED = {**FRAMES, "2026-10-01": pd.DataFrame({"user": ["z"], "n": [9], "channel": ["x"]})}
    monkeypatch.setattr(f"{__name__}.FRAMES", FRAMES_CHANGED)
    result = dg.materialize(
        [events], partition_key="2026-10-01", resources=_io(tmp_path), raise_on_error=False
    )
    assert not result.success
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert _files(tmp_path) == ["ingest/events/date=2026-10-01/part.parquet"]


def test_failed_cast_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ingest/events/date=2026-10-01/part.parquet"
    _materialize_events(tmp_path, ["2026-10-01"])
    before = path.read_bytes()
    bad = {**FRAMES, "2026-10-01": pd.DataFrame({"user": ["z"], "n": ["not a number"], "channel": ["x"]})}
    monkeypatch.setattr(f"{__name__}.FRAMES", bad)
    with pytest.raises(ValueError, match="cannot cast the output to its Arrow schema"):
        dg.materialize([events], partition_key="2026-10-01", resources=_io(tmp_path))
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["ingest/events/date=2026-10-01/part.parquet"]


def test_date_column_in_a_partitioned_output_is_rejected(tmp_path: Path) -> None:
    @dg.asset(partitions_def=DAILY)
    def with_date() -> pd.DataFrame:
        return pd.DataFrame({"date": ["2026-10-01"], "x": [1]})

    with pytest.raises(ValueError, match="Hive layout"):
        dg.materialize([with_date], partition_key="2026-10-01", resources=_io(tmp_path))
    assert _files(tmp_path) == []


def test_single_run_backfill_dict_output_writes_one_file_per_day(tmp_path: Path) -> None:
    @dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    def batched(context: dg.AssetExecutionContext) -> dict[str, pd.DataFrame]:
        return {k: pd.DataFrame({"day": [k], "n": [i]}) for i, k in enumerate(context.partition_keys)}

    result = dg.materialize(
        [batched],
        resources=_io(tmp_path),
        tags={
            "dagster/asset_partition_range_start": "2026-10-02",
            "dagster/asset_partition_range_end": "2026-10-04",
        },
    )
    assert result.success
    days = ["2026-10-02", "2026-10-03", "2026-10-04"]
    assert _files(tmp_path) == [f"batched/date={d}/part.parquet" for d in days]
    for i, d in enumerate(days):
        assert pq.read_table(tmp_path / f"batched/date={d}/part.parquet").to_pydict() == {
            "day": [d],
            "n": [i],
        }
    mats = result.asset_materializations_for_node("batched")
    assert sorted(m.partition for m in mats) == days
    assert mats[0].metadata["dagster/row_count"].value == 3
    assert mats[0].metadata["partition_row_counts"].value == dict.fromkeys(days, 1)


# ----------------------------------------------------------------------------------------------- reads
def test_window_input_concatenates_existing_days_with_a_date_column(tmp_path: Path) -> None:
    _materialize_events(tmp_path, ["2026-10-01", "2026-10-03"])  # 2026-10-02 missing
    seen: dict[str, object] = {}
    window = dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=0)

    @dg.asset(
        partitions_def=DAILY, ins={"up": dg.AssetIn(key=["ingest", "events"], partition_mapping=window)}
    )
    def rolling(up: pd.DataFrame) -> pd.DataFrame:
        seen["rolling"] = up
        return pd.DataFrame({"rows": [len(up)]})

    @dg.asset(
        partitions_def=DAILY, ins={"up": dg.AssetIn(key=["ingest", "events"], partition_mapping=window)}
    )
    def by_day(up: dict[str, pd.DataFrame]) -> pd.DataFrame:
        seen["by_day"] = up
        return pd.DataFrame({"rows": [sum(len(f) for f in up.values())]})

    result = dg.materialize(
        [events, rolling, by_day],
        partition_key="2026-10-03",
        selection=[rolling, by_day],
        resources=_io(tmp_path),
    )
    assert result.success
    frame = seen["rolling"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["user", "n", "channel", "date"]
    assert frame["user"].tolist() == ["a", "b", "d", "e", "f"]
    assert frame["date"].tolist() == ["2026-10-01"] * 2 + ["2026-10-03"] * 3

    # an unpartitioned downstream asset reads the whole history the same way
    @dg.asset(ins={"up": dg.AssetIn(key=["ingest", "events"])})
    def history(up: pd.DataFrame) -> None:
        seen["history"] = up

    assert dg.materialize([events, history], selection=[history], resources=_io(tmp_path)).success
    assert seen["history"].equals(frame)
    by_day_value = seen["by_day"]
    assert isinstance(by_day_value, dict)
    assert list(by_day_value) == ["2026-10-01", "2026-10-03"]
    assert by_day_value["2026-10-03"]["n"].tolist() == [4, 5, 6]
    assert "date" not in by_day_value["2026-10-03"].columns


def test_window_and_dict_inputs_on_the_first_days(tmp_path: Path) -> None:
    """A clipped window is still a window (date column), a dict is always a dict, even with 0 days."""
    seen: dict[tuple[str, str], object] = {}
    previous_3 = dg.TimeWindowPartitionMapping(start_offset=-3, end_offset=-1)
    last_3 = dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=0)

    def probe(name: str, mapping: dg.PartitionMapping, annotation: type) -> dg.AssetsDefinition:
        @dg.asset(
            name=name,
            partitions_def=DAILY,
            ins={"up": dg.AssetIn(key=["ingest", "events"], partition_mapping=mapping)},
        )
        def _probe(context: dg.AssetExecutionContext, up: annotation) -> None:  # type: ignore[valid-type]
            seen[(name, context.partition_key)] = up

        return _probe

    probes = [
        probe("clipped", last_3, pd.DataFrame),
        probe("before", previous_3, pd.DataFrame),
        probe("as_dict", previous_3, dict[str, pd.DataFrame]),
    ]

    def run(day: str) -> tuple[object, object, object]:
        result = dg.materialize(
            [events, *probes], partition_key=day, selection=probes, resources=_io(tmp_path)
        )
        assert result.success
        return seen[("clipped", day)], seen[("before", day)], seen[("as_dict", day)]

    # nothing written at all: empty frames with only the date column, an empty dict
    clipped, before, as_dict = run("2026-10-01")
    assert isinstance(clipped, pd.DataFrame) and list(clipped.columns) == ["date"] and clipped.empty
    assert isinstance(before, pd.DataFrame) and list(before.columns) == ["date"] and before.empty
    assert as_dict == {}

    _materialize_events(tmp_path, ["2026-10-01"])
    clipped, before, as_dict = run("2026-10-01")
    assert isinstance(clipped, pd.DataFrame) and isinstance(before, pd.DataFrame)
    assert clipped["date"].tolist() == ["2026-10-01"] * 2  # one day, still with its date column
    assert (
        list(before.columns) == ["user", "n", "channel", "date"] and before.empty
    )  # columns of existing days
    assert as_dict == {}

    _, before, as_dict = run("2026-10-02")
    assert isinstance(before, pd.DataFrame) and isinstance(as_dict, dict)
    assert before["user"].tolist() == ["a", "b"]
    assert list(as_dict) == ["2026-10-01"]


def test_a_state_as_of_an_earlier_day_is_a_window_when_asked(tmp_path: Path) -> None:
    """`AssetIn(metadata={"window": True})` on a shifted single day (a state as of D-2): an empty frame with the
    asset's columns while that day does not exist yet, then that day's rows with their date; never None."""
    seen: dict[str, pd.DataFrame] = {}

    @dg.asset(partitions_def=DAILY, ins={"up": dg.AssetIn(
        key=["ingest", "events"], metadata={"window": True},
        partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=-2))})
    def two_days_before(context: dg.AssetExecutionContext, up: pd.DataFrame) -> None:
        seen[context.partition_key] = up

    _materialize_events(tmp_path, ["2026-10-01", "2026-10-02", "2026-10-03"])
    for day in ("2026-10-02", "2026-10-03"):
        assert dg.materialize([events, two_days_before], partition_key=day, selection=[two_days_before],
                              resources=_io(tmp_path)).success
    assert list(seen["2026-10-02"].columns) == ["user", "n", "channel", "date"] and seen["2026-10-02"].empty
    assert seen["2026-10-03"]["user"].tolist() == ["a", "b"]
    assert seen["2026-10-03"]["date"].tolist() == ["2026-10-01"] * 2


def test_previous_day_self_dependency(tmp_path: Path) -> None:
    previous_day = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

    @dg.asset(
        partitions_def=DAILY, ins={"prev": dg.AssetIn(key="running_total", partition_mapping=previous_day)}
    )
    def running_total(context: dg.AssetExecutionContext, prev: Optional[pd.DataFrame]) -> pd.DataFrame:  # noqa: UP045
        total = 0 if prev is None else int(prev["total"].iloc[0])
        return pd.DataFrame({"total": [total + 10]})

    @dg.asset(
        partitions_def=DAILY, ins={"prev": dg.AssetIn(key="modern_total", partition_mapping=previous_day)}
    )
    def modern_total(prev: pd.DataFrame | None) -> pd.DataFrame:
        return pd.DataFrame({"total": [(0 if prev is None else int(prev["total"].iloc[0])) + 1]})

    for day in ["2026-10-01", "2026-10-02", "2026-10-03"]:
        assert dg.materialize(
            [running_total, modern_total], partition_key=day, resources=_io(tmp_path)
        ).success
    assert pd.read_parquet(tmp_path / "running_total/date=2026-10-03/part.parquet")["total"].tolist() == [30]
    assert pd.read_parquet(tmp_path / "modern_total/date=2026-10-03/part.parquet")["total"].tolist() == [3]

    # a gap: 2026-10-05 sees no 2026-10-04 and starts again from None
    assert dg.materialize([running_total], partition_key="2026-10-05", resources=_io(tmp_path)).success
    assert pd.read_parquet(tmp_path / "running_total/date=2026-10-05/part.parquet")["total"].tolist() == [10]


def test_missing_single_partition_names_the_path_unless_optional(tmp_path: Path) -> None:
    @dg.asset(partitions_def=DAILY, ins={"up": dg.AssetIn(key=["ingest", "events"])})
    def same_day(up: pd.DataFrame) -> None:
        pass

    @dg.asset(partitions_def=DAILY, ins={"up": dg.AssetIn(key=["ingest", "events"])})
    def same_day_optional(up: pd.DataFrame | None) -> pd.DataFrame:
        return pd.DataFrame({"had_input": [up is not None]})

    expected = str(tmp_path / "ingest/events/date=2026-10-02/part.parquet")
    with pytest.raises(FileNotFoundError, match=expected):
        dg.materialize(
            [events, same_day], partition_key="2026-10-02", selection=[same_day], resources=_io(tmp_path)
        )
    assert dg.materialize(
        [events, same_day_optional],
        partition_key="2026-10-02",
        selection=[same_day_optional],
        resources=_io(tmp_path),
    ).success
    assert pd.read_parquet(tmp_path / "same_day_optional/date=2026-10-02/part.parquet")[
        "had_input"
    ].tolist() == [False]

    _materialize_events(tmp_path, ["2026-10-02"])
    seen: list[pd.DataFrame] = []

    @dg.asset(partitions_def=DAILY, ins={"up": dg.AssetIn(key=["ingest", "events"])})
    def same_day_present(up: pd.DataFrame) -> None:
        seen.append(up)

    assert dg.materialize(
        [events, same_day_present],
        partition_key="2026-10-02",
        selection=[same_day_present],
        resources=_io(tmp_path),
    ).success
    assert list(seen[0].columns) == ["user", "n", "channel"]  # a single partition has no date column
    assert seen[0]["user"].tolist() == ["c"]


# ------------------------------------------------------------------------------------------------- S3
@pytest.mark.s3
def test_s3_round_trip(s3_server: S3Server) -> None:
    root = s3_server.url("io-manager-test")
    opts = s3_server.storage_options
    _materialize_events(root, list(FRAMES), **opts)
    _materialize_events(root, ["2026-10-02"], **opts)  # re-materialising replaces the object
    seen: list[pd.DataFrame] = []

    @dg.asset(
        partitions_def=DAILY,
        ins={
            "up": dg.AssetIn(key=["ingest", "events"], partition_mapping=dg.TimeWindowPartitionMapping(-3, 0))
        },
    )
    def rolling(up: pd.DataFrame) -> None:
        seen.append(up)

    result = dg.materialize(
        [events, rolling], partition_key="2026-10-03", selection=[rolling], resources=_io(root, **opts)
    )
    assert result.success
    assert seen[0]["n"].tolist() == [1, 2, 3, 4, 5, 6]
    assert seen[0]["date"].tolist() == ["2026-10-01"] * 2 + ["2026-10-02"] + ["2026-10-03"] * 3

    import s3fs

    s3 = s3fs.S3FileSystem(endpoint_url=opts["endpoint_url"], key=opts["key"], secret=opts["secret"])
    prefix = f"{s3_server.bucket}/io-manager-test/ingest/events"
    assert sorted(s3.find(prefix)) == [f"{prefix}/date={d}/part.parquet" for d in FRAMES]

    frame = pd.read_parquet(f"{root}/ingest/events", storage_options=opts).sort_values("n")
    assert frame["user"].tolist() == ["a", "b", "c", "d", "e", "f"]
    assert frame["date"].astype(str).tolist() == ["2026-10-01"] * 2 + ["2026-10-02"] + ["2026-10-03"] * 3

    local_bytes = fs_module.table_to_parquet_bytes(pa.Table.from_pandas(FRAMES["2026-10-01"]).cast(SCHEMA))
    assert s3.cat_file(f"{prefix}/date=2026-10-01/part.parquet") == local_bytes


def test_input_metadata_columns_reads_only_those_columns(tmp_path):
    daily = dg.DailyPartitionsDefinition(start_date="2026-11-01")

    @dg.asset(partitions_def=daily)
    def wide() -> pd.DataFrame:
        return pd.DataFrame({"a": ["x", "y"], "b": [1, 2], "c": [0.5, 1.5]})

    seen: dict[str, list[str]] = {}

    @dg.asset(partitions_def=daily, ins={"wide": dg.AssetIn(metadata={"columns": ["c", "a"]})})
    def narrow(wide: pd.DataFrame) -> pd.DataFrame:
        seen["columns"] = list(wide.columns)
        return wide

    result = dg.materialize([wide, narrow], partition_key="2026-11-02",
                            resources={"io_manager": ParquetIOManager(base_path=str(tmp_path))})
    assert result.success
    assert seen["columns"] == ["c", "a"]

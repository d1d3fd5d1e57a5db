"""The KPI framework: one small typed declaration per KPI, and the output conventions of docs/outputs.md section 1.

A KPI is a `KpiDefinition` (its documentation, dimensions, inputs and a pure compute function). The compute
function returns the KPI's rows (dimension columns + numerator, denominator, value, unit) except the total row;
`finalise` adds the total row (a copy of the headline row with every dimension null, or the row the compute
function marked as total), checks the arithmetic, applies the explicit Arrow schema and sorts the rows, so a
re-run writes the same bytes. A compute function may return a `KpiOutput` instead, its rows with metadata for
the materialisation (predictive CLV records its fitted parameters so). `standard_checks` are the checks every
KPI carries.
"""

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

UNITS = ("ratio", "percent", "count", "days", "hours", "currency", "currency_per_day", "score", "index")
BINDING_COLUMNS = ("numerator", "denominator", "value", "unit")
# value = numerator / denominator x scale for quotient rows (docs/outputs.md section 1)
SCALE = {"percent": 100.0, "index": 100.0}
BOUNDS = {"ratio": (0.0, 1.0), "percent": (0.0, 100.0)}


@dataclass(frozen=True)
class Dimension:
    """A dimension column: fixed values get a row every day; open (values=None) ones the values present."""

    name: str
    values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class KpiInput:
    """An upstream asset the KPI reads: the same day (window_days=1) or a trailing window of days, ending
    `offset_days` before D (a state as of D-30: window_days=1, offset_days=30).

    A shifted input is read as a window: before its day exists (the first 30 days) it is an empty frame with
    the asset's columns, never None; a window carries each row's partition in a `date` column."""

    name: str
    key: tuple[str, ...]
    window_days: int = 1
    columns: tuple[str, ...] | None = None
    offset_days: int = 0

    @property
    def partition_mapping(self) -> dg.TimeWindowPartitionMapping | None:
        if self.window_days == 1 and self.offset_days == 0:
            return None
        return dg.TimeWindowPartitionMapping(start_offset=-(self.window_days - 1 + self.offset_days),
                                             end_offset=-self.offset_days)

    @property
    def window_text(self) -> str:
        """` (28 d)`, ` (at D-30)`, ` (7 d to D-30)` or nothing: for the catalog and the metadata."""
        if self.offset_days:
            end = f"D-{self.offset_days}"
            return f" (at {end})" if self.window_days == 1 else f" ({self.window_days} d to {end})"
        return f" ({self.window_days} d)" if self.window_days > 1 else ""

    @property
    def io_metadata(self) -> dict[str, object] | None:
        """What the IO manager is told: the columns to read, and that a shifted input is a window."""
        metadata = {**({"columns": list(self.columns)} if self.columns else {}),
                    **({"window": True} if self.offset_days else {})}
        return metadata or None


@dataclass(frozen=True)
class KpiDefinition:
    name: str
    family: str
    description: str  # starts with the grain ("One row per ...")
    formula: str
    window: str
    population: str
    unit: str  # the unit(s) as docs/kpi_catalog.md lists them, e.g. "ratio, count"
    dimensions: tuple[Dimension, ...]
    headline: Mapping[str, str]  # the dimension values of the headline row ({} = the compute's total row)
    inputs: tuple[KpiInput, ...]
    seed: str
    compute: Callable[..., pd.DataFrame]
    exclusions: str = "-"
    # quotient rows whose value may leave [0, 1] / [0, 100]: bound checks on them only warn
    unbounded_metrics: tuple[str, ...] = ()
    window_days: int = 1  # how far back the KPI's definition reads (for window_complete)
    # how far back the stored person ids it reads go (default window_days): identity changes after that apply
    remap_days: int | None = None
    warn_below: float | None = None  # a WARN check fires when the headline value is below this target
    extra: Mapping[str, str] = field(default_factory=dict)
    # column lineage: output column (a dimension, numerator, denominator or value) -> "input.column" of the
    # upstream columns it is computed from; value defaults to numerator + denominator
    lineage: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # value = numerator / denominator x scale, per unit, where the KPI's quotients scale otherwise than SCALE
    # says (NPS: a score x 100)
    scale: Mapping[str, float] = field(default_factory=dict)

    @property
    def needs_day(self) -> bool:
        """Compute functions of windowed KPIs take the partition day as `day`."""
        return "day" in inspect.signature(self.compute).parameters

    @property
    def needs_settings(self) -> bool:
        """Compute functions that need the reporting timezone and the like take `settings`."""
        return "settings" in inspect.signature(self.compute).parameters

    @property
    def needs_remap(self) -> bool:
        """Compute functions that count persons take `remap`: stored person ids -> persons as of the newest
        identity partition (docs/outputs.md 2.2, `kpis.persons`)."""
        return "remap" in inspect.signature(self.compute).parameters

    def column_lineage(self) -> dict[str, list[tuple[tuple[str, ...], str]]]:
        """{output column: [(upstream asset key path, upstream column)]}, with the identity changes a remapping
        KPI reads added to the columns that count persons."""
        keys = {i.name: i.key for i in self.inputs}
        out: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for column, sources in self.lineage.items():
            for source in sources:
                name, _, upstream_column = source.partition(".")
                if name not in keys or not upstream_column:
                    raise ValueError(f"{self.name}: lineage source {source!r} is not <input>.<column> of its inputs")
                out.setdefault(column, []).append((keys[name], upstream_column))
        if "value" not in out:
            out["value"] = [*out.get("numerator", []), *out.get("denominator", [])]
        if self.needs_remap:
            persons = [(("identity", "identity_merges"), "kept_person_id"),
                       (("identity", "identity_merges"), "other_person_id")]
            for column in ("numerator", "value"):
                out.setdefault(column, []).extend(persons)
        return {column: list(dict.fromkeys(deps)) for column, deps in out.items() if deps}

    @property
    def dimension_names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([*(pa.field(d, pa.string()) for d in self.dimension_names),
                          pa.field("numerator", pa.float64()), pa.field("denominator", pa.float64()),
                          pa.field("value", pa.float64()), pa.field("unit", pa.string(), nullable=False)])


@dataclass(frozen=True)
class KpiOutput:
    """What a compute function returns when its KPI also records facts beside its rows (a fitted model's
    parameters, why it could not be fitted): the rows, and metadata for the materialisation."""

    rows: pd.DataFrame | list[dict]
    metadata: Mapping[str, object] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# building rows

def quotient(numerator: float | None, denominator: float | None, unit: str, scale: float | None = None,
             **dims: str | None) -> dict:
    """A quotient row: value = numerator / denominator (x 100 for percent/index, or x `scale`); a zero or null
    denominator gives a null value, never NaN or inf."""
    ok = denominator is not None and not _isnan(denominator) and denominator != 0 and numerator is not None \
        and not _isnan(numerator)
    value = numerator / denominator * (SCALE.get(unit, 1.0) if scale is None else scale) if ok else None
    if value is not None and not math.isfinite(value):  # too large for a float (a cost of 1e-300): undefined
        value = None
    return {**dims, "numerator": numerator, "denominator": denominator, "value": value, "unit": unit}


def count(value: float, unit: str = "count", **dims: str | None) -> dict:
    """Count form: numerator = value, null denominator."""
    return {**dims, "numerator": float(value), "denominator": None, "value": float(value), "unit": unit}


def median(values: Sequence[float] | np.ndarray, unit: str, **dims: str | None) -> dict:
    """Median form: null numerator, denominator = observations, linear interpolation (numpy default)."""
    return percentile(values, 50, unit, **dims)


def percentile(values: Sequence[float] | np.ndarray, q: float, unit: str, **dims: str | None) -> dict:
    """Percentile form (docs/outputs.md 2.6): null numerator, denominator = observations, linear interpolation between
    closest ranks (numpy's default, SQL percentile_cont)."""
    arr = np.asarray(values, dtype=float)
    return {**dims, "numerator": None, "denominator": float(len(arr)),
            "value": float(np.percentile(arr, q)) if len(arr) else None, "unit": unit}


def _isnan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def finalise(kpi: KpiDefinition, rows: pd.DataFrame | list[dict] | KpiOutput) -> pd.DataFrame:
    """The KPI's table: the total row added (from the headline), exact columns, sorted dims (nulls first)."""
    if isinstance(rows, KpiOutput):  # its metadata goes to the materialisation, its rows here
        rows = rows.rows
    frame = pd.DataFrame(rows)
    for column in [*kpi.dimension_names, *BINDING_COLUMNS]:
        if column not in frame.columns:
            frame[column] = None
    dims = kpi.dimension_names
    is_total = frame[dims].isna().all(axis=1) if dims else pd.Series(True, index=frame.index)
    if kpi.headline and not is_total.any():
        match = pd.Series(True, index=frame.index)
        for name in dims:
            wanted = kpi.headline.get(name)
            match &= frame[name].isna() if wanted is None else (frame[name] == wanted)
        if match.sum() != 1:
            raise ValueError(f"{kpi.name}: the headline {dict(kpi.headline)} matches {int(match.sum())} rows")
        total = frame.loc[match].copy()
        total[dims] = None
        frame = pd.concat([total, frame], ignore_index=True)
    frame = frame[[*dims, *BINDING_COLUMNS]]
    for column in ("numerator", "denominator", "value"):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    for name in dims:
        frame[name] = frame[name].astype("string")
    if dims:
        frame = frame.sort_values(dims, na_position="first", kind="stable", ignore_index=True)
    return frame


# ---------------------------------------------------------------------------------------------------------------
# standard checks

def standard_checks(kpi: KpiDefinition, key: dg.AssetKey, frame: pd.DataFrame) -> list[dg.AssetCheckResult]:
    dims = kpi.dimension_names
    out = []
    # exactly one total row, and a unique grain (null-safe)
    totals = int(frame[dims].isna().all(axis=1).sum()) if dims else len(frame)
    out.append(dg.AssetCheckResult(asset_key=key, check_name="total_row_exists", passed=totals == 1,
                                   metadata={"total_rows": totals}))
    duplicated = int(frame[dims].astype("string").fillna("\x00null").duplicated().sum()) if dims else max(
        len(frame) - 1, 0)
    out.append(dg.AssetCheckResult(asset_key=key, check_name="dimensions_are_unique", passed=duplicated == 0,
                                   metadata={"duplicate_rows": duplicated}))
    numbers = frame[["numerator", "denominator", "value"]].to_numpy(dtype=float)
    finite = ~np.isinf(numbers).any()
    units = set(frame["unit"].dropna())
    out.append(dg.AssetCheckResult(
        asset_key=key, check_name="columns_types_and_units_are_valid",
        passed=bool(finite) and units <= set(UNITS) and frame["unit"].notna().all()
        and list(frame.columns) == [*dims, *BINDING_COLUMNS],
        metadata={"units": ", ".join(sorted(units)), "columns": ", ".join(frame.columns)}))
    # value = numerator / denominator (x scale) wherever both are present
    both = frame["numerator"].notna() & frame["denominator"].notna() & (frame["denominator"] != 0)
    expected = (frame["numerator"] / frame["denominator"]
                * frame["unit"].map({**SCALE, **kpi.scale}).fillna(1.0)).astype(float)
    # a quotient too large for a float is undefined, like one over zero: its value must be null (`quotient`)
    overflow = both & ~np.isfinite(expected)
    both &= ~overflow
    off = both & ~np.isclose(frame["value"].astype(float), expected, rtol=1e-9, atol=1e-12, equal_nan=False)
    zero = (frame["denominator"].fillna(1) == 0) | overflow
    out.append(dg.AssetCheckResult(
        asset_key=key, check_name="value_is_numerator_over_denominator",
        passed=int(off.sum()) == 0 and bool(frame.loc[zero, "value"].isna().all()),
        metadata={"rows_off": int(off.sum()), "zero_denominator_rows_with_value": int(frame.loc[zero, "value"]
                                                                                      .notna().sum())}))
    # bounds: ratio in [0, 1], percent in [0, 100]; unbounded metrics only warn
    metric = frame["metric"] if "metric" in frame.columns else pd.Series(None, index=frame.index)
    is_total = frame[dims].isna().all(axis=1) if dims else pd.Series(True, index=frame.index)
    metric = metric.astype(object).where(~is_total, kpi.headline.get("metric"))  # the total row is the headline
    bounded = ~metric.isin(kpi.unbounded_metrics)
    outside = pd.Series(False, index=frame.index)
    for unit, (low, high) in BOUNDS.items():
        rows = (frame["unit"] == unit) & frame["value"].notna()
        outside |= rows & ((frame["value"] < low) | (frame["value"] > high))
    hard = int((outside & bounded).sum())
    out.append(dg.AssetCheckResult(
        asset_key=key, check_name="ratios_within_bounds", passed=int(outside.sum()) == 0,
        # only the unbounded metrics of docs/outputs.md 1.4 outside their range: a warning, never blocking
        severity=dg.AssetCheckSeverity.ERROR if hard else dg.AssetCheckSeverity.WARN,
        metadata={"rows_outside": int(outside.sum()), "bounded_rows_outside": hard}))
    return out


def headline_target_check(kpi: KpiDefinition, key: dg.AssetKey, frame: pd.DataFrame) -> dg.AssetCheckResult:
    """WARN when the headline (total row) value is below the KPI's target."""
    dims = kpi.dimension_names
    total = frame[frame[dims].isna().all(axis=1)] if dims else frame
    value = float(total["value"].iloc[0]) if len(total) and pd.notna(total["value"].iloc[0]) else None
    return dg.AssetCheckResult(asset_key=key, check_name="headline_at_least_target",
                               passed=value is None or value >= (kpi.warn_below or 0.0),
                               severity=dg.AssetCheckSeverity.WARN,
                               metadata={"headline": value, "target": kpi.warn_below})


STANDARD_CHECK_NAMES = ("total_row_exists", "dimensions_are_unique", "columns_types_and_units_are_valid",
                        "value_is_numerator_over_denominator", "ratios_within_bounds")
STANDARD_CHECK_DESCRIPTIONS = {
    "total_row_exists": "exactly one total (headline) row, the row whose dimensions are all null",
    "dimensions_are_unique": "no two rows share the same dimension values (nulls compared as equal)",
    "columns_types_and_units_are_valid": "the columns are the dimensions then the binding columns, every unit "
                                         "is a known one and no number is infinite",
    "value_is_numerator_over_denominator": "value = numerator / denominator (times the unit's scale) wherever "
                                           "both are known, and value is null where the denominator is 0",
    "ratios_within_bounds": "ratios lie in [0, 1] and percents in [0, 100]; an error for a bounded metric, "
                            "only a warning for the metrics the catalog declares unbounded (e.g. a lift, or "
                            "opens counted against the day's sends, can leave the range legitimately)",
}

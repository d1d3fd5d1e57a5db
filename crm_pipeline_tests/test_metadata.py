"""`arrow_table`: every asset's frame becomes exactly its declared Arrow schema, also on a day without rows."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crm_pipeline.metadata import arrow_table

SCHEMA = pa.schema([
    pa.field("hour", pa.string(), nullable=False),
    pa.field("seen_at", pa.timestamp("us", tz="UTC")),
    pa.field("seen_date", pa.date32()),
    pa.field("count_rows", pa.int64(), nullable=False),
])


def test_zero_rows_of_any_dtype_give_the_declared_schema():
    # what pandas leaves on an empty day: an empty `.dt.hour.map(...)` is int32, an empty `.map` object, an
    # empty arithmetic float64 (regression: aggregates/visits failed on a day without session_start events)
    frame = pd.DataFrame({"hour": pd.Series([], dtype="int32"), "seen_at": pd.Series([], dtype=object),
                          "seen_date": pd.Series([], dtype="float64"), "count_rows": pd.Series([], dtype="int64")})
    table = arrow_table(frame, SCHEMA)
    assert table.num_rows == 0 and table.schema == SCHEMA


def test_all_null_columns_are_written_as_typed_nulls():
    frame = pd.DataFrame({"hour": ["07", "08"], "seen_at": [np.nan, np.nan], "seen_date": [np.nan, np.nan],
                          "count_rows": [1, 2], "ignored": ["x", "y"]})
    table = arrow_table(frame, SCHEMA)
    assert table.schema == SCHEMA
    assert table.to_pydict() == {"hour": ["07", "08"], "seen_at": [None, None], "seen_date": [None, None],
                                 "count_rows": [1, 2]}


def test_values_that_do_not_fit_the_schema_still_fail():
    frame = pd.DataFrame({"hour": ["07"], "seen_at": [None], "seen_date": [None], "count_rows": ["many"]})
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        arrow_table(frame, SCHEMA)
    with pytest.raises(ValueError, match="lacks columns"):
        arrow_table(frame.drop(columns="count_rows"), SCHEMA)

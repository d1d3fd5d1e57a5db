"""The identity step's consistency check between the merge log and the map, passing and failing."""

import datetime as dt

import pandas as pd

from crm_pipeline.identity.assets import merges_consistent_with_map

D = dt.date(2026, 10, 2)


def log(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame({"change_date": [D] * len(rows), "kind": [r[0] for r in rows],
                         "kept_person_id": [r[1] for r in rows], "other_person_id": [r[2] for r in rows],
                         "reason": ["x"] * len(rows)})


def mapping(*persons: str) -> pd.DataFrame:
    return pd.DataFrame({"identifier_type": "customer_id", "identifier": [f"C{i}" for i in range(len(persons))],
                         "person_id": list(persons)})


def test_a_consistent_log_passes():
    assert merges_consistent_with_map(log(("merge", "A", "B"), ("split", "C", "D")), mapping("A", "C", "D")).passed


def test_an_absorbed_id_still_in_the_map_fails():
    result = merges_consistent_with_map(log(("merge", "A", "B")), mapping("A", "B"))
    assert not result.passed and result.metadata["absorbed_ids_still_in_map"].value == ["B"]


def test_a_split_part_missing_from_the_map_fails():
    result = merges_consistent_with_map(log(("split", "C", "D")), mapping("C"))
    assert not result.passed and result.metadata["logged_ids_missing_from_map"].value == ["D"]


def test_a_person_split_and_absorbed_on_the_same_day_passes():
    # seen on a medium world: P loses a shared device to a new part Q, and P's remaining identifiers join an
    # older person O the same day; P lives on in O
    assert merges_consistent_with_map(log(("merge", "O", "P"), ("split", "P", "Q")), mapping("O", "Q")).passed
    # but the survivor itself must exist
    assert not merges_consistent_with_map(log(("merge", "O", "P"), ("split", "P", "Q")), mapping("Q")).passed

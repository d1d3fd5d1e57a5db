"""Fuzzy matching of duplicate CRM customer records (crm_pipeline.identity.matching).

The hand-built cases are placed in a background of 2,000 synthetic, distinct profiles so that random-pair u,
term frequencies and lambda are estimated on a realistic table (a table of ten rows says nothing about how
rare a name is). Every case uses its own rare name, birth date and postcode, so cases cannot interfere;
expected answers follow from the rules in the module docstring. The last test measures the matcher against
the generator's ground truth on the `small` world.
"""

import datetime as dt
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crm_pipeline.identity.matching import (
    MATCH_SCHEMA,
    MatchingConfig,
    match_profiles,
    pairwise_scores,
)
from crm_pipeline.ingestion.crm import PROFILE_SCHEMA

# ---------------------------------------------------------------------------------------------------------------
# fixtures

_BG_FIRST = ("James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Laura", "Daniel", "Emma",
             "Thomas", "Anna", "Paul", "Julia", "Peter", "Sophie", "Mark", "Lucy", "Simon", "Clara")
_BG_LAST = ("Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Walker", "Wright", "Green", "Hall",
            "Wood", "Harris", "Martin", "Jackson", "Clarke", "Lewis", "Young", "King", "Baker", "Hill")
_BG_STREETS = ("High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue", "Oak Street")
BACKGROUND_SIZE = 2_000
JOHN_SMITHS = 40  # a visible block of one common name with different birth dates


def _profiles(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame with the PROFILE_SCHEMA columns and the dtypes ingestion gives them (missing keys -> null)."""
    frame = pd.DataFrame([{name: row.get(name) for name in PROFILE_SCHEMA.names} for row in rows])
    for name in PROFILE_SCHEMA.names:
        if name == "date_of_birth":
            frame[name] = pd.to_datetime(frame[name]).astype("datetime64[s]")
        else:
            frame[name] = frame[name].astype("string")
    return frame


def _background() -> list[dict[str, Any]]:
    """Distinct synthetic people: 20 x 20 names, birth dates over 55 years, 150 postcodes, unique contacts."""
    rng = np.random.default_rng(2024)
    rows = []
    for k in range(BACKGROUND_SIZE):
        common = k < JOHN_SMITHS
        first = "John" if common else _BG_FIRST[rng.integers(len(_BG_FIRST))]
        last = "Smith" if common else _BG_LAST[rng.integers(len(_BG_LAST))]
        dob = dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 20_000)))
        postcode = f"BG{rng.integers(100, 250)}"
        email = f"{first}.{last}{k}@example.org".lower()
        if k % 150 == 7:  # placeholders typed by staff for people without email / phone
            email = "test@test.com"
        rows.append(
            {
                "customer_id": f"B{k:05d}",
                "first_name": first,
                "last_name": last,
                "date_of_birth": dob,
                "address_line": f"{rng.integers(1, 400)} {_BG_STREETS[rng.integers(len(_BG_STREETS))]}",
                "city": f"Town{postcode[-1]}",
                "postcode": postcode,
                "email": email,
                "phone": "+10000000000" if k % 120 == 3 else f"+1415{1_000_000 + k:07d}",
                "region": "CA",
                "country": "US",
            }
        )
    return rows


def _person(k: int, first: str, last: str, **extra: Any) -> dict[str, Any]:
    """The base record of case k: its own birth date, address, postcode, email and phone."""
    return {
        "first_name": first,
        "last_name": last,
        "date_of_birth": dt.date(1961 + k, 1 + k % 12, 3 + k),
        "address_line": f"{10 + k} Larkspur Crescent",
        "city": "Kingsbridge",
        "postcode": f"KB{k:02d} 1AA",
        "email": f"{first}.{last}.{k}@mailbox.net".lower().replace(" ", ""),
        "phone": f"+4479{k:02d}123456",
        "region": "Devon",
        "country": "GB",
        **extra,
    }


# (case, record a, what record b changes, merge expected). Each a/b pair is the same human iff expected.
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("surname typo", _person(1, "Ophelia", "Ravenscroft"), {"last_name": "Ravenscorft", "email": None}, True),
    ("first and last name swapped", _person(2, "Barnaby", "Wolstenholme"),
     {"first_name": "Wolstenholme", "last_name": "Barnaby"}, True),
    ("new email, same name, birth date and address", _person(3, "Isolde", "Brackenbury"),
     {"email": "izzy_b_77@fastmail.com", "phone": None}, True),
    ("moved, same email", _person(4, "Cosimo", "Pettigrew"),
     {"address_line": "4 Harbour View", "city": "Falmouth", "postcode": "TR11 3QQ", "phone": None}, True),
    ("moved, same phone, no email", _person(5, "Perpetua", "Ashcombe", email=None),
     {"address_line": "77 Quay Street", "city": "Truro", "postcode": "TR1 2HE"}, True),
    ("accents, case, hyphen and blank variants", _person(6, "José", "Núñez-García", address_line="6 Calle Mayor"),
     {"first_name": "jose", "last_name": "nunez  garcia", "address_line": "6 calle mayor", "email": None}, True),
    ("day and month of birth transposed", _person(7, "Lysander", "Thistlewood"),
     {"date_of_birth": dt.date(1968, 10, 8), "phone": None}, True),  # a: 1968-08-10
    ("common name, different birth date", _person(8, "John", "Smith", email=None, phone=None),
     {"date_of_birth": dt.date(1984, 2, 29), "address_line": "3 Elm Close", "postcode": "EX1 1AB",
      "city": "Exeter"}, False),
    # staff-entered records without name or birth date: the shared placeholders are all they have in common
    ("different people sharing a placeholder email and phone",
     _person(9, "Henrietta", "Merriweather", email="test@test.com", phone="+10000000000", date_of_birth=None),
     {"first_name": None, "last_name": None, "address_line": "9 Mill Lane", "postcode": "PL1 1AA",
      "city": "Plymouth"}, False),
    ("different people sharing a placeholder-style email at another domain and a listed placeholder phone",
     _person(10, "Seraphina", "Haverford", email="noemail@shop.co.uk", phone="+11234567890", date_of_birth=None),
     {"first_name": None, "last_name": None, "address_line": "1 Bay Road", "postcode": "TQ1 1AA",
      "city": "Torquay"}, False),
    ("namesakes whose birth date was typed as a placeholder",
     _person(12, "Clementine", "Ashby", date_of_birth=dt.date(1900, 1, 1), phone=None),
     {"email": "clem.ashby@post.org", "address_line": "2 Ford Street", "postcode": "BS1 4AA", "city": "Bristol"},
     False),
    ("twins: same surname, birth date, address and landline, different first name",
     _person(11, "Rosalind", "Featherstonehaugh"),
     {"first_name": "Evander", "email": "evander.f@mailbox.net"}, False),
    # without any email or phone on the pair nothing tells a household member from a replaced first name: the
    # score decides (rare surname, same birth date and address: a merge)
    ("no contact details, first name replaced", _person(13, "Cordelia", "Pennywhistle", email=None, phone=None),
     {"first_name": "Marguerite"}, True),
    ("first name missing on one side, other email", _person(14, "Augustin", "Quillfeather", phone=None),
     {"first_name": None, "email": "aq.home@post.net"}, True),
]
def _case_rows() -> list[dict[str, Any]]:
    rows = []
    for k, (_, a, change, _) in enumerate(CASES):
        rows.append({"customer_id": f"K{k:02d}a", **a})
        rows.append({"customer_id": f"K{k:02d}b", **a, **change})
    return rows


@pytest.fixture(scope="module")
def profiles() -> pd.DataFrame:
    return _profiles(_background() + _case_rows())


@pytest.fixture(scope="module")
def matched(profiles: pd.DataFrame) -> pd.DataFrame:
    return match_profiles(profiles)


@pytest.fixture(scope="module")
def case_scores(profiles: pd.DataFrame) -> pd.DataFrame:
    """Every blocked pair touching a case record, without threshold or name gate (for failure messages)."""
    ids = profiles.loc[profiles["customer_id"].str.startswith("K"), "customer_id"]
    return match_profiles(profiles, ids, MatchingConfig(threshold=0.0, require_name_agreement=False))


# ---------------------------------------------------------------------------------------------------------------
# behaviour on hand-built cases


@pytest.mark.parametrize(("k", "case", "expect_merge"), [(k, c[0], c[3]) for k, c in enumerate(CASES)],
                         ids=[c[0] for c in CASES])
def test_case_merges_as_expected(
    matched: pd.DataFrame, case_scores: pd.DataFrame, k: int, case: str, expect_merge: bool
) -> None:
    a, b = f"K{k:02d}a", f"K{k:02d}b"
    hit = matched[(matched["customer_id_a"] == a) & (matched["customer_id_b"] == b)]
    scored = case_scores[(case_scores["customer_id_a"] == a) & (case_scores["customer_id_b"] == b)]
    seen = scored.drop(columns=["customer_id_a", "customer_id_b", "rule"]).to_dict("records")
    assert (len(hit) == 1) == expect_merge, (
        f"{case}: expected {'a merge' if expect_merge else 'no merge'} of {a} and {b}; "
        f"the pair as scored without threshold and name gate: {seen or 'not blocked together'}"
    )


def test_case_records_merge_with_nothing_else(matched: pd.DataFrame) -> None:
    case_ids = matched["customer_id_a"].str.startswith("K") | matched["customer_id_b"].str.startswith("K")
    cross = matched[case_ids & (matched["customer_id_a"].str[:3] != matched["customer_id_b"].str[:3])]
    assert cross.empty, f"case records merged with unrelated records:\n{cross}"


def test_placeholders_and_hubs_never_merge_background_people(profiles: pd.DataFrame) -> None:
    # 14 background people typed as test@test.com, 17 with +10000000000, and (here) 8 people sharing an
    # unlisted office phone: none of them is the same human, so no pair among them may come out
    hub = profiles.copy()
    office = hub["customer_id"].isin([f"B{k:05d}" for k in range(100, 108)])
    # records typed at an office desk: no name, no birth date, the office phone and email
    hub.loc[office, ["phone", "email"]] = ["+14155550100", "front.desk@acme-corp.com"]
    hub.loc[office, ["first_name", "last_name"]] = None
    hub.loc[office, "date_of_birth"] = pd.NaT
    shared = hub["email"].isin(["test@test.com", "front.desk@acme-corp.com"]) | hub["phone"].isin(
        ["+10000000000", "+14155550100"]
    )
    result = match_profiles(hub)
    ids = set(hub.loc[shared, "customer_id"])
    both = result[result["customer_id_a"].isin(ids) & result["customer_id_b"].isin(ids)]
    assert both.empty, f"people sharing a placeholder or hub value were merged:\n{both}"


def test_rare_name_weighs_more_than_common_name(profiles: pd.DataFrame) -> None:
    # two pairs with the same evidence (exact name, same birth date, nothing else in common): "John Smith"
    # (40 in the background) must score lower than a name found once in the table
    def stranger(cid: str, first: str, last: str, n: int) -> dict[str, Any]:
        return {"customer_id": cid, "first_name": first, "last_name": last, "date_of_birth": dt.date(1999, 9, 9),
                "address_line": f"{n} Nowhere Road", "city": f"City{n}", "postcode": f"ZZ{n}",
                "email": f"x{n}@void.net"}

    extra = [stranger("T1", "John", "Smith", 1), stranger("T2", "John", "Smith", 2),
             stranger("T3", "Quintus", "Ollerenshaw", 3), stranger("T4", "Quintus", "Ollerenshaw", 4)]
    table = pd.concat([profiles, _profiles(extra)], ignore_index=True)
    scored = match_profiles(table, pd.Series(["T1", "T3"]), MatchingConfig(threshold=0.0))
    weight = scored.set_index(["customer_id_a", "customer_id_b"])["match_weight"]
    assert weight[("T3", "T4")] > weight[("T1", "T2")] + 3, (
        f"rare-name pair weight {weight[('T3', 'T4')]:.2f} should exceed common-name pair weight "
        f"{weight[('T1', 'T2')]:.2f} by several bits (term-frequency adjustment)"
    )


# (comparison, record a, record b changes, expected level): one field varied at a time, -1 = no information
_BASE = {"first_name": "Octavius", "last_name": "Wetherby", "address_line": "5 Bahnhofstr.", "city": "Kingsbridge",
         "postcode": "TQ7 1AA", "email": "o.wetherby77@mailbox.net", "phone": "+441632960123"}
LEVELS: list[tuple[str, dict[str, Any], dict[str, Any], str, int]] = [
    ("folded names are exact", {"first_name": "José", "last_name": "Núñez-García"},
     {"first_name": "JOSE ", "last_name": "nunez garcia"}, "gamma_name", 6),
    ("first/last swapped", {}, {"first_name": "Wetherby", "last_name": "Octavius"}, "gamma_name", 5),
    ("Jaro-Winkler >= 0.92", {"first_name": "Katherine"}, {"first_name": "Katherina"}, "gamma_name", 4),
    ("Jaro-Winkler >= 0.85", {"first_name": "Marc"}, {"first_name": "Mark"}, "gamma_name", 3),
    ("first name only", {}, {"last_name": "Pemberton"}, "gamma_name", 2),
    ("last name only", {}, {"first_name": "Evander"}, "gamma_name", 1),
    # JW(katherine, katherina) = 0.956 and JW(wetherby, wetherbey) = 0.978 >= 0.92; JW(wetherby, pemberton) = 0.56 and
    # JW(octavius, evander) = 0.35 < 0.85
    ("first name only, with a typo", {"first_name": "Katherine"}, {"first_name": "Katherina", "last_name": "Pemberton"},
     "gamma_name", 2),
    ("last name only, with a typo", {}, {"first_name": "Evander", "last_name": "Wetherbey"}, "gamma_name", 1),
    ("names differ", {}, {"first_name": "Gwendolyn", "last_name": "Pryce"}, "gamma_name", 0),
    # a placeholder is a missing name; with one part missing the other part speaks only when exact
    ("placeholder first name, same last name", {}, {"first_name": "Test"}, "gamma_name", 1),
    ("no first name, other last name", {}, {"first_name": None, "last_name": "Wetherbie"}, "gamma_name", -1),
    ("no last name, same first name", {}, {"last_name": None}, "gamma_name", 2),
    ("no names on one side", {}, {"first_name": None, "last_name": "Unknown"}, "gamma_name", -1),
    ("birth date exact", {}, {}, "gamma_date_of_birth", 2),
    ("day and month transposed", {"date_of_birth": dt.date(1977, 4, 9)}, {"date_of_birth": dt.date(1977, 9, 4)},
     "gamma_date_of_birth", 1),
    ("birth year off", {"date_of_birth": dt.date(1977, 4, 21)}, {"date_of_birth": dt.date(1978, 4, 21)},
     "gamma_date_of_birth", 1),
    ("birth dates differ", {"date_of_birth": dt.date(1977, 4, 21)}, {"date_of_birth": dt.date(1980, 11, 2)},
     "gamma_date_of_birth", 0),
    ("placeholder birth date", {"date_of_birth": dt.date(1970, 1, 1)}, {"date_of_birth": dt.date(1970, 1, 1)},
     "gamma_date_of_birth", -1),
    ("email exact", {}, {"email": " O.Wetherby77@mailbox.net"}, "gamma_email", 3),
    ("email local part exact", {}, {"email": "o.wetherby77+shop@gmail.com"}, "gamma_email", 2),
    ("email local part typo, same number", {}, {"email": "o.wetherbey77@gmail.com"}, "gamma_email", 1),
    ("email local part, other number", {}, {"email": "o.wetherby12@gmail.com"}, "gamma_email", 0),
    ("placeholder email", {}, {"email": "noemail@example.com"}, "gamma_email", -1),
    ("phone exact", {}, {}, "gamma_phone", 2),
    ("phone, same last 7 digits", {}, {"phone": "+441202960123"}, "gamma_phone", 1),
    ("phones differ", {}, {"phone": "+441202555777"}, "gamma_phone", 0),
    ("placeholder phone", {}, {"phone": "+10000000000"}, "gamma_phone", -1),
    ("same postcode and address, abbreviation spelled out", {}, {"address_line": "5 Bahnhofstrasse"},
     "gamma_address", 3),
    ("same postcode, other house number", {}, {"address_line": "7 Bahnhofstrasse"}, "gamma_address", 2),
    ("same city only", {}, {"postcode": "TQ7 9ZZ", "address_line": "1 Fore Street"}, "gamma_address", 1),
    ("addresses differ", {}, {"postcode": "EX1 1AA", "city": "Exeter"}, "gamma_address", 0),
    ("no address on one side", {}, {"postcode": None, "city": None, "address_line": None}, "gamma_address", -1),
]


@pytest.fixture(scope="module")
def level_scores() -> pd.DataFrame:
    rows = []
    for k, (_, a, change, _, _) in enumerate(LEVELS):
        record = {**_BASE, "date_of_birth": dt.date(1950 + k, 3, 14), **a}
        rows += [{"customer_id": f"L{k:02d}a", **record}, {"customer_id": f"L{k:02d}b", **record, **change}]
    table = _profiles(_background() + rows)
    ids = pd.Series([r["customer_id"] for r in rows])
    # every row starts from the same email and phone, which the hub guard (tested above) would null
    config = MatchingConfig(threshold=0.0, require_name_agreement=False, max_records_per_contact_value=1_000)
    return match_profiles(table, ids, config)


@pytest.mark.parametrize(("k", "column", "expected"), [(k, r[3], r[4]) for k, r in enumerate(LEVELS)],
                         ids=[r[0] for r in LEVELS])
def test_comparison_level(level_scores: pd.DataFrame, k: int, column: str, expected: int) -> None:
    pair = level_scores[(level_scores["customer_id_a"] == f"L{k:02d}a") & (level_scores["customer_id_b"] == f"L{k:02d}b")]
    assert len(pair) == 1, f"{LEVELS[k][0]}: the pair was not blocked together"
    got = pair.iloc[0].drop(["customer_id_a", "customer_id_b", "rule"]).to_dict()
    assert got[column] == expected, f"{LEVELS[k][0]}: expected {column} = {expected}, got {got}"


# ---------------------------------------------------------------------------------------------------------------
# contract: schema, incremental equals from scratch, determinism


def test_output_matches_schema_and_holds_no_pii(matched: pd.DataFrame, profiles: pd.DataFrame) -> None:
    assert list(matched.columns) == MATCH_SCHEMA.names
    table = pa.Table.from_pandas(matched, schema=MATCH_SCHEMA, preserve_index=False)
    assert table.schema.equals(MATCH_SCHEMA)
    assert (matched["customer_id_a"] < matched["customer_id_b"]).all()
    assert matched.equals(matched.sort_values(["customer_id_a", "customer_id_b"]).reset_index(drop=True))
    assert (matched["rule"] == "fuzzy_profile").all()
    assert matched["match_probability"].between(MatchingConfig().threshold, 1.0).all()
    pii = set(profiles[["first_name", "last_name", "email", "phone", "address_line", "postcode"]].stack())
    leaked = {v for v in matched[["customer_id_a", "customer_id_b", "rule"]].stack() if v in pii}
    assert not leaked
    # every case expected to merge did (and only those, among case records): 7 pairs
    assert len(matched[matched["customer_id_a"].str.startswith("K")]) == sum(c[3] for c in CASES)


def test_incremental_equals_from_scratch_restricted_to_candidates(
    profiles: pd.DataFrame, matched: pd.DataFrame
) -> None:
    candidates = pd.Series(["K00b", "K01a", "K05b", "K10b", "B00000", "B00017", "B01234", "not-a-customer"])
    incremental = match_profiles(profiles, candidates)
    touching = matched["customer_id_a"].isin(candidates) | matched["customer_id_b"].isin(candidates)
    expected = matched[touching].reset_index(drop=True)
    assert len(expected) >= 3, "the candidates should touch several accepted pairs"
    pd.testing.assert_frame_equal(incremental, expected)


def test_no_candidates_gives_no_pairs(profiles: pd.DataFrame) -> None:
    assert match_profiles(profiles, pd.Series([], dtype="string")).empty


def test_result_does_not_depend_on_row_order(profiles: pd.DataFrame, matched: pd.DataFrame) -> None:
    shuffled = profiles.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(match_profiles(shuffled), matched)


@pytest.mark.parametrize(
    ("rows", "what"),
    [
        ([], "no profiles"),
        ([{"customer_id": "C1", "first_name": "Ann"}], "one profile"),
        ([{"customer_id": "C1"}, {"customer_id": "C2"}], "profiles with every attribute missing"),
    ],
)
def test_tiny_tables_give_an_empty_result_with_the_schema(rows: list[dict[str, Any]], what: str) -> None:
    result = match_profiles(_profiles(rows) if rows else _profiles([{}]).iloc[:0])
    assert result.empty, what
    assert list(result.columns) == MATCH_SCHEMA.names


def test_duplicate_customer_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="one row per customer_id"):
        match_profiles(_profiles([{"customer_id": "C1"}, {"customer_id": "C1"}]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name_jaro_winkler_thresholds", (0.8, 0.9)),
        ("threshold", 1.5),
        ("max_block_size", 1),
        ("blocking_rules", ("same_shoe_size",)),
        ("probability_two_random_records_match", 0.0),
    ],
)
def test_config_rejects_nonsense(field: str, value: Any) -> None:
    with pytest.raises(ValueError):
        MatchingConfig(**{field: value})


# ---------------------------------------------------------------------------------------------------------------
# evaluation helper


@pytest.mark.parametrize(
    ("links", "persons", "expected"),
    [
        # chain a-b, b-c predicts the cluster {a, b, c} (pairs ab, ac, bc); truth pairs: ab and de
        ([("a", "b"), ("b", "c")], {"a": 1, "b": 1, "c": 2, "d": 3, "e": 3},
         {"tp": 1, "fp": 2, "fn": 1, "precision": 1 / 3, "recall": 1 / 2, "f1": 0.4}),
        # perfect prediction
        ([("a", "b"), ("d", "e")], {"a": 1, "b": 1, "c": 2, "d": 3, "e": 3},
         {"tp": 2, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}),
        # nothing predicted; links to unknown ids are ignored
        ([("x", "y")], {"a": 1, "b": 1}, {"tp": 0, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.0, "f1": 0.0}),
    ],
    ids=["chain over-merges", "perfect", "nothing found"],
)
def test_pairwise_scores(links: list[tuple[str, str]], persons: dict[str, int], expected: dict[str, float]) -> None:
    predicted = pd.DataFrame(links, columns=["customer_id_a", "customer_id_b"])
    truth = pd.DataFrame({"customer_id": list(persons), "true_person_id": [f"P{p}" for p in persons.values()]})
    assert pairwise_scores(predicted, truth) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------------------------
# ground truth: the generator's small world


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    from crm_pipeline.generator import generate_world
    from crm_pipeline.ingestion.crm import extract_crm_day, split_customer_profiles
    from crm_pipeline.settings import Settings

    root: Path = tmp_path_factory.mktemp("small_world")
    start = dt.date(2026, 10, 1)
    url = f"sqlite:///{root / 'crm.sqlite'}"
    generate_world(str(root / "landing"), url, str(root / "truth"), scale="small", start=start, days=3, seed=7)
    settings = Settings(landing_root=str(root / "landing"), warehouse_root=str(root / "warehouse"),
                        database_url=url, start_date=start)
    result = extract_crm_day("customers", start + dt.timedelta(days=2), settings, first_load=True)
    _, profiles = split_customer_profiles(result.clean)
    truth = pd.read_parquet(root / "truth" / "customer_records.parquet")
    return profiles, truth[truth["customer_id"].isin(profiles["customer_id"])]


def test_small_world_duplicate_records_are_found(small_world: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    profiles, truth = small_world
    predicted = match_profiles(profiles)
    scores = pairwise_scores(predicted, truth)
    # which duplicate variants were missed / which predicted pairs are wrong, for the failure message
    variant = truth.set_index("customer_id")["duplicate_variant"]
    true_pairs = {
        tuple(p): variant[list(p)].dropna().iloc[0] if variant[list(p)].notna().any() else None
        for ids in truth.groupby("true_person_id")["customer_id"].apply(sorted)
        for p in itertools.combinations(ids, 2)
    }
    found = set(zip(predicted["customer_id_a"], predicted["customer_id_b"], strict=True))
    missed = pd.Series([true_pairs[p] for p in true_pairs if p not in found]).value_counts().to_dict()
    wrong = sorted(found - set(true_pairs))[:10]
    assert scores["f1"] >= 0.99, f"pairwise scores {scores}; missed by variant {missed}; false pairs {wrong}"
    assert scores["precision"] >= 0.99 and scores["recall"] >= 0.98, scores

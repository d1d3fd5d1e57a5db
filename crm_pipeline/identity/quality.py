"""Identity quality against a generated world's ground truth: pairwise precision, recall and F1.

Only generated worlds have a truth (`CRM_GROUND_TRUTH_ROOT`, written by `crm-pipeline generate`); the numbers
go into the identity materialisation's metadata and the benchmark.
"""

import pandas as pd

from crm_pipeline.identity.graph import pairwise_identifier_scores
from crm_pipeline.ingestion.normalise import normalise_email, normalise_phone, pseudonymise
from crm_pipeline.settings import Settings
from crm_pipeline.storage.fs import filesystem, join


def _read_parquet(root: str, name: str, settings: Settings) -> pd.DataFrame | None:
    fs, path = filesystem(join(root, name), settings.storage_options)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return pd.read_parquet(f)


def truth_identifiers(settings: Settings) -> pd.DataFrame | None:
    """The truth's identifiers in the identity map's form (emails and phones as the pipeline's keyed hashes)."""
    if not settings.ground_truth_root:
        return None
    truth = _read_parquet(settings.ground_truth_root, "identifiers.parquet", settings)
    if truth is None:
        return None
    truth = truth.copy()
    kind = truth["identifier_type"].astype("string")
    value = truth["identifier"].astype("string")
    for name, normalise in (("email", normalise_email),
                            ("phone", lambda v: normalise_phone(v, settings.phone_region))):
        mask = (kind == name).to_numpy()
        value.loc[mask] = pseudonymise(normalise(value.loc[mask]), settings.pii_key).to_numpy()
    truth["identifier"] = value
    return truth.dropna(subset=["identifier"])


def truth_customer_records(settings: Settings) -> pd.DataFrame | None:
    if not settings.ground_truth_root:
        return None
    return _read_parquet(settings.ground_truth_root, "customer_records.parquet", settings)


def identity_quality(identity_map: pd.DataFrame, link_state: pd.DataFrame,
                     settings: Settings) -> dict[str, float]:
    """Scores for identifiers (all types; raw and reachable) and for CRM customer records (duplicates).

    Raw recall counts every true pair, also those the data never links (a cookie that never logged in);
    reachable recall counts only pairs some chain of observed links could join (see
    `pairwise_identifier_scores`). Empty when no ground truth is configured.
    """
    truth = truth_identifiers(settings)
    records = truth_customer_records(settings)
    if truth is None or records is None:
        return {}
    scores = pairwise_identifier_scores(identity_map, truth, links=link_state)
    out = {f"identifiers_{k}": float(v) for k, v in scores.items()}
    record_truth = pd.DataFrame({
        "identifier_type": "customer_id",
        "identifier": records["customer_id"].astype("string"),
        "true_person_id": records["true_person_id"].astype("string"),
        "is_shared": False,
        "is_placeholder": False,
    })
    record_scores = pairwise_identifier_scores(identity_map, record_truth)
    out.update({f"customer_records_{k}": float(v) for k, v in record_scores.items()})
    return out

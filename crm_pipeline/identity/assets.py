"""The identity asset group: fuzzy CRM record matches and the identity graph of day D.

Both are incremental: day D reads the state of D-1 plus day D's facts (graph.py, matching.py).
"""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline import checks
from crm_pipeline.identity.graph import (
    FUZZY_PAIRS_SCHEMA,
    IDENTIFIER_COLUMN_NAMES,
    IDENTITY_LINKS_SCHEMA,
    IDENTITY_MAP_SCHEMA,
    IDENTITY_MERGES_SCHEMA,
    IDENTITY_REJECTIONS_SCHEMA,
    LINK_STATE_SCHEMA,
    DayFacts,
    IdentityConfig,
    IdentityState,
    resolve_day,
    resolve_person_ids,
)
from crm_pipeline.identity.matching import MATCH_SCHEMA, MatchingConfig, match_profiles
from crm_pipeline.identity.quality import identity_quality
from crm_pipeline.ingestion.assets import PREVIOUS_DAY, PROFILES_KEY
from crm_pipeline.ingestion.normalise import normalise_phone
from crm_pipeline.metadata import arrow_table, column_schema, partition_day, string_array
from crm_pipeline.resources import OWNERS, PipelineSettingsResource
from crm_pipeline.settings import Settings

GROUP = "identity"
KINDS = {"python", "scipy", "parquet"}

FUZZY_KEY = dg.AssetKey(["identity", "fuzzy_matches"])
MAP_KEY = dg.AssetKey(["identity", "identity_map"])
LINKS_KEY = dg.AssetKey(["identity", "identity_links"])
MERGES_KEY = dg.AssetKey(["identity", "identity_merges"])
REJECTIONS_KEY = dg.AssetKey(["identity", "identity_rejections"])
LINK_STATE_KEY = dg.AssetKey(["identity", "identity_link_state"])

# the facts identity reads, with the identifier columns each carries (only those are loaded)
FACT_INPUTS: dict[str, tuple[dg.AssetKey, list[str]]] = {
    "events": (dg.AssetKey(["ingest", "events"]), list(IDENTIFIER_COLUMN_NAMES)),
    "orders": (dg.AssetKey(["ingest", "orders"]), ["customer_id", "email_hash", "anonymous_id", "device_id"]),
    "crm_customers": (dg.AssetKey(["ingest", "crm_customers"]), ["customer_id", "email_hash", "phone_hash"]),
    "crm_leads": (dg.AssetKey(["ingest", "crm_leads"]), ["customer_id", "email_hash", "phone_hash"]),
    "crm_support_tickets": (dg.AssetKey(["ingest", "crm_support_tickets"]), ["customer_id", "email_hash"]),
    "crm_survey_responses": (dg.AssetKey(["ingest", "crm_survey_responses"]), ["customer_id", "email_hash"]),
}



def changed_customer_ids(profiles: pd.DataFrame, day: dt.date, timezone: str) -> pd.Series:
    """Customer records created or updated on `day` (reporting timezone): the ones to match again today."""
    local = [profiles[c].dt.tz_convert(timezone).dt.date for c in ("created_at", "updated_at")]
    changed = (local[0] == day) | (local[1] == day)
    return profiles.loc[changed.fillna(False).to_numpy(), "customer_id"].astype("string")


def matching_config(settings: Settings) -> MatchingConfig:
    """The matcher's settings: its defaults plus the pipeline's threshold and extra placeholder values."""
    defaults = MatchingConfig()
    phones = normalise_phone(pd.Series(list(settings.placeholder_phones), dtype="string"), settings.phone_region)
    return MatchingConfig(
        threshold=settings.fuzzy_match_threshold,
        placeholder_emails=(*defaults.placeholder_emails, *settings.placeholder_emails),
        placeholder_phones=(*defaults.placeholder_phones, *phones.dropna().tolist()),
    )


def update_fuzzy_matches(previous: pd.DataFrame | None, profiles: pd.DataFrame, day: dt.date,
                         settings: Settings) -> tuple[pd.DataFrame, int]:
    """Yesterday's pairs, minus those touching a record changed today, plus today's matches of those records.

    The first day (no previous state) matches all records. Returns (pairs, number of records matched again).
    """
    config = matching_config(settings)
    if previous is None:
        return match_profiles(profiles, None, config), len(profiles)
    candidates = changed_customer_ids(profiles, day, settings.timezone)
    if candidates.empty:
        return previous, 0
    touched = previous["customer_id_a"].isin(candidates) | previous["customer_id_b"].isin(candidates)
    fresh = match_profiles(profiles, candidates, config)
    pairs = pd.concat([previous.loc[~touched.to_numpy()], fresh], ignore_index=True)
    pairs = pairs.sort_values(["customer_id_a", "customer_id_b"], ignore_index=True)
    return pairs, len(candidates)


def fuzzy_matches_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    pk = ["customer_id_a", "customer_id_b"]

    @dg.asset(
        key=FUZZY_KEY, partitions_def=partitions, group_name=GROUP, owners=OWNERS, kinds=KINDS,
        description=(
            "One row per pair of CRM customer records (customer_id_a < customer_id_b) judged to be the same human "
            "as of day D, with the match probability, match weight and the comparison level of each field "
            "(Fellegi-Sunter with blocking, Jaro-Winkler/token similarities and term-frequency adjusted u). "
            "Incremental: records created or updated on D are matched again against all records; other pairs "
            "carry over. Ids and scores only: no clear PII."
        ),
        ins={"profiles": dg.AssetIn(key=PROFILES_KEY),
             "previous": dg.AssetIn(key=FUZZY_KEY, partition_mapping=PREVIOUS_DAY)},
        metadata={"dagster/column_schema": column_schema(MATCH_SCHEMA), "primary_key": pk},
        check_specs=[
            dg.AssetCheckSpec("customer_id_a_customer_id_b_is_unique", asset=FUZZY_KEY, blocking=True,
                              partitions_def=partitions, description=checks.primary_key_description(pk)),
            dg.AssetCheckSpec("schema_matches_contract", asset=FUZZY_KEY, blocking=True, partitions_def=partitions,
                              description="columns and Arrow types are exactly the documented ones"),
            dg.AssetCheckSpec("pairs_are_ordered", asset=FUZZY_KEY, blocking=True, partitions_def=partitions,
                              description="customer_id_a < customer_id_b on every row (one row per pair)"),
        ],
    )
    def fuzzy_matches(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                      profiles: pd.DataFrame, previous: pd.DataFrame | None):
        s = settings.get()
        pairs, rematched = update_fuzzy_matches(previous, profiles, partition_day(context), s)
        table = arrow_table(pairs, MATCH_SCHEMA)
        model = pairs.attrs.get("match_model")
        yield dg.Output(table, metadata={
            "pairs": len(pairs), "records": len(profiles), "records_matched_today": rematched,
            "first_load": previous is None,
            **({"match_model": dg.MetadataValue.json(json.loads(json.dumps(model, default=str)))} if model else {}),
        })
        yield checks.primary_key_is_unique(FUZZY_KEY, pairs, pk)
        yield checks.schema_matches(FUZZY_KEY, table, MATCH_SCHEMA)
        yield checks.pairs_are_ordered(FUZZY_KEY, pairs)

    return fuzzy_matches


def merges_consistent_with_map(merges: pd.DataFrame, identity_map: pd.DataFrame) -> dg.AssetCheckResult:
    """The merge log agrees with the map: an absorbed id is gone; a survivor and both parts of a split exist,
    or (a person split and then absorbed on the same day) live on in the survivor they were merged into."""
    persons = string_array(identity_map["person_id"])

    def known(ids: pd.Series) -> np.ndarray:  # Arrow's is_in: ~10x faster than pandas' isin on strings here
        return pc.is_in(string_array(ids), value_set=persons).to_numpy(
            zero_copy_only=False)

    is_merge = (merges["kind"] == "merge").to_numpy()
    absorbed = merges.loc[is_merge, "other_person_id"].astype("string")
    absorbed_alive = sorted(absorbed[known(absorbed)].unique())
    logged_ids = pd.Series(pd.unique(pd.concat([
        merges.loc[is_merge, "kept_person_id"], merges.loc[~is_merge, "kept_person_id"],
        merges.loc[~is_merge, "other_person_id"]]).astype("string")), dtype="string").sort_values(ignore_index=True)
    final = resolve_person_ids(logged_ids, merges)
    missing = logged_ids[~known(final)].tolist()
    return dg.AssetCheckResult(
        asset_key=MERGES_KEY, check_name="merges_consistent_with_map",
        passed=not absorbed_alive and not missing,
        metadata={"absorbed_ids_still_in_map": dg.MetadataValue.json(absorbed_alive[:20]),
                  "logged_ids_missing_from_map": dg.MetadataValue.json(missing[:20])},
    )


# The tables the identity step writes: key, Arrow schema, primary key, description.
OUTPUTS: dict[str, tuple[dg.AssetKey, pa.Schema, list[str], str]] = {
    "identity_link_state": (LINK_STATE_KEY, LINK_STATE_SCHEMA,
                            ["identifier_type_a", "identifier_a", "identifier_type_b", "identifier_b", "rule"], (
        "One row per candidate link (accepted or refused) between two identifiers as of day D: the state the next "
        "day starts from. Links from landing facts accumulate; CRM and fuzzy links are the current ones.")),
    "identity_links": (LINKS_KEY, IDENTITY_LINKS_SCHEMA,
                       ["identifier_type_a", "identifier_a", "identifier_type_b", "identifier_b", "rule"], (
        "One row per accepted link between two identifiers as of day D, the evidence that put them in one "
        "person: the rule (co_occurrence:<source> or fuzzy_profile), its score and first/last seen dates.")),
    "identity_rejections": (REJECTIONS_KEY, IDENTITY_REJECTIONS_SCHEMA, ["identifier_type", "identifier"], (
        "One row per identifier refused as a link as of day D (reason placeholder, hub or cardinality), with the "
        "number of customer_ids and identifiers it co-occurred with: where to look when a number looks wrong.")),
    "identity_map": (MAP_KEY, IDENTITY_MAP_SCHEMA, ["identifier_type", "identifier"], (
        "One row per identifier (identifier_type, identifier) seen up to day D: the stable person_id it resolves "
        "to, first and last seen dates, and whether it was refused as a link (placeholder, hub, cardinality: "
        "then it is a person of its own). Emails and phones appear only as keyed hashes. Downstream stages attach "
        "persons with `crm_pipeline.identity.graph.attach_person_id` (customer_id > email > phone > device > "
        "cookie).")),
    "identity_merges": (MERGES_KEY, IDENTITY_MERGES_SCHEMA, ["kind", "kept_person_id", "other_person_id"], (
        "One row per identity change on day D: kind `merge` (kept = surviving older id, other = absorbed id) or "
        "`split` (kept = the id that keeps the older identifiers, other = the new id), with the reason. Read all "
        "partitions to remap history (resolve_person_ids follows chains in one lookup).")),
}


def identity_graph_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    outs = {
        name: dg.AssetOut(key=key, description=description, group_name=GROUP, owners=OWNERS, kinds=KINDS,
                          metadata={"dagster/column_schema": column_schema(schema), "primary_key": pk})
        for name, (key, schema, pk, description) in OUTPUTS.items()
    }
    ins = {
        name: dg.AssetIn(key=key, metadata={"columns": columns}) for name, (key, columns) in FACT_INPUTS.items()
    }
    ins["fuzzy_matches"] = dg.AssetIn(key=FUZZY_KEY, metadata={"columns": list(FUZZY_PAIRS_SCHEMA.names)})
    ins["previous_map"] = dg.AssetIn(key=MAP_KEY, partition_mapping=PREVIOUS_DAY)
    ins["previous_link_state"] = dg.AssetIn(key=LINK_STATE_KEY, partition_mapping=PREVIOUS_DAY)
    ins["previous_rejections"] = dg.AssetIn(key=REJECTIONS_KEY, partition_mapping=PREVIOUS_DAY)
    facts = {FUZZY_KEY, *(key for key, _ in FACT_INPUTS.values())}
    check_specs = [
        dg.AssetCheckSpec(checks.primary_key_check_name(pk), asset=key, blocking=True, partitions_def=partitions,
                          description="no identifier maps to two persons" if key == MAP_KEY
                          else checks.primary_key_description(pk))
        for key, _, pk, _ in OUTPUTS.values()
    ] + [checks.schema_spec(key, partitions) for key, _, _, _ in OUTPUTS.values()] + [
        dg.AssetCheckSpec("merges_consistent_with_map", asset=MERGES_KEY, blocking=True, partitions_def=partitions,
                          description="the merge log agrees with the map: an absorbed person id is gone from it, "
                                      "a survivor and both parts of a split are in it"),
    ]

    @dg.multi_asset(
        name="identity_graph", outs=outs, ins=ins, partitions_def=partitions, check_specs=check_specs,
        # Every output is computed from yesterday's map, link state and rejections together, but each output
        # declares only the day's facts and its own previous day. Declaring the cross reads (map <- link
        # state of D-1, ...) would either be a cycle between assets or shift a backfill of D..E to D..E+1
        # for some outputs of this one non-subsettable step, which the UI refuses.
        internal_asset_deps={
            "identity_map": {MAP_KEY, *facts},
            "identity_link_state": {LINK_STATE_KEY, *facts},
            "identity_rejections": {REJECTIONS_KEY, *facts},
            "identity_links": set(facts),
            "identity_merges": set(facts),
        },
    )
    def identity_graph(context: dg.AssetExecutionContext, settings: PipelineSettingsResource,
                       events: pd.DataFrame, orders: pd.DataFrame, crm_customers: pd.DataFrame,
                       crm_leads: pd.DataFrame, crm_support_tickets: pd.DataFrame,
                       crm_survey_responses: pd.DataFrame, fuzzy_matches: pd.DataFrame,
                       previous_map: pd.DataFrame | None, previous_link_state: pd.DataFrame | None,
                       previous_rejections: pd.DataFrame | None):
        s = settings.get()
        day = partition_day(context)
        facts = DayFacts.from_frames(
            day, {"events": events, "orders": orders},
            crm={"customers": crm_customers, "leads": crm_leads, "support_tickets": crm_support_tickets,
                 "survey_responses": crm_survey_responses},
            fuzzy_pairs=fuzzy_matches,
        )
        previous = None
        if previous_map is not None and previous_link_state is not None and previous_rejections is not None:
            previous = IdentityState(map=previous_map, links=previous_link_state, rejections=previous_rejections)
        result = resolve_day(facts, previous, IdentityConfig.from_settings(s))
        frames = {"identity_map": result.identity_map, "identity_links": result.identity_links,
                  "identity_merges": result.identity_merges, "identity_rejections": result.identity_rejections,
                  "identity_link_state": result.state.links}
        quality = identity_quality(result.identity_map, result.state.links, s)
        summary = {k: int(v) for k, v in result.counts.items()}
        tables = {name: arrow_table(frames[name], OUTPUTS[name][1]) for name in OUTPUTS}
        for name, table in tables.items():
            metadata: dict[str, object] = {"first_load": previous is None}
            if name == "identity_map":
                metadata.update(summary)
                metadata["persons"] = int(result.identity_map["person_id"].nunique())
                metadata.update({f"quality_{k}": v for k, v in quality.items()})
            yield dg.Output(table, output_name=name, metadata=metadata)
        for name, (key, _, pk, _) in OUTPUTS.items():
            yield checks.primary_key_is_unique(key, frames[name], pk)
        for name, (key, schema, _, _) in OUTPUTS.items():
            yield checks.schema_is_declared(key, tables[name], schema)
        yield merges_consistent_with_map(result.identity_merges, result.identity_map)

    return identity_graph


def build_identity_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [fuzzy_matches_asset(partitions), identity_graph_asset(partitions)]

"""The restatement sensor: late inputs and identity changes re-materialise the days they affect.

Every evaluation (every 5 minutes by default) looks at the last CRM_LATE_DATA_LOOKBACK_DAYS materialised days:

1. **Late landing files** (`ingestion.late`): a file new or changed since ingestion recorded its listing, quiet
   for CRM_LATE_DATA_SETTLE_MINUTES, that holds rows of the day.
2. **Late CRM rows**: more rows created or updated on the day than its extraction saw (`rows_on_day`).
3. **Identity changes**: an identity_merges partition with merges or splits that this sensor has not acted on.

A late day D requests the whole graph for D..D+CRM_RESTATE_DAYS-1 (up to the newest materialised day): the
snapshots and states carry D forward and the trailing windows of later days include it. An identity change on
D requests, for D-CRM_IDENTITY_RESTATE_DAYS..D-1, the journeys and their attribution, the CLV predictions and
the KPIs that count persons or read journeys (docs/outputs.md 2.2: they carry person ids through later changes), plus
audience_membership up to the newest day, whose `since` chains.

Everything found in one evaluation becomes one backfill (the UI shows it like a manual one; the backfill
daemon runs the days in dependency order). The cursor remembers what was requested, so a burst of late files
or a backfill still running never gives a second request for the same change. Identity partitions present when
the sensor first runs are taken as already handled.
"""

import datetime as dt
import hashlib
import json

import dagster as dg
import pandas as pd
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset  # what backfills take
from dagster._core.definitions.events import AssetKeyPartitionKey

from crm_pipeline.ingestion.assets import extraction_key
from crm_pipeline.ingestion.contract import LANDING_SOURCES
from crm_pipeline.ingestion.crm import CRM_TABLES
from crm_pipeline.ingestion.late import crm_rows_per_day, late_landing_files, recorded_listing
from crm_pipeline.kpis.assets import ALL_KPIS, SCORECARD_KEY, kpi_key
from crm_pipeline.kpis.audiences import MEMBERSHIP_KEY
from crm_pipeline.kpis.clv import CLV_MODEL_KEY, CLV_PREDICTIONS_KEY
from crm_pipeline.kpis.persons import IDENTITY_MERGES_PATH
from crm_pipeline.metadata import latest_metadata
from crm_pipeline.settings import Settings
from crm_pipeline.storage import fs as storage

SENSOR_NAME = "restatement_sensor"
EVENTS_KEY = dg.AssetKey(["ingest", "events"])
RESTATEMENT_TAG = "crm/restatement"


ATTRIBUTION_PER_ORDER = (("attribution", "journeys"), ("attribution", "journey_touches"),
                         ("attribution", "order_attribution"), ("attribution", "channel_roas"))


# person-level outputs that carry their persons through later identity changes (a merged buyer is one buyer)
PERSON_LEVEL = (tuple(CLV_PREDICTIONS_KEY.path), tuple(CLV_MODEL_KEY.path))


def person_counting_keys() -> list[dg.AssetKey]:
    """The assets an identity change restates: the journeys and their attribution (buyers and touches are
    joined through persons), the CLV predictions and the models fitted on their buyers, the KPIs that count
    persons or read journeys or predictions, the scorecard, the health table and the dashboard that shows them.
    The 90-day training states and the models trained on them are left as they were."""
    per_order = {tuple(k) for k in ATTRIBUTION_PER_ORDER + PERSON_LEVEL}
    kpis = [kpi_key(k) for k in ALL_KPIS if k.needs_remap or any(tuple(i.key) in per_order for i in k.inputs)]
    return [*(dg.AssetKey(list(k)) for k in ATTRIBUTION_PER_ORDER + PERSON_LEVEL), *kpis, SCORECARD_KEY,
            dg.AssetKey(["pipeline_health"]), dg.AssetKey(["report"])]


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def find_late_days(settings: Settings, instance: dg.DagsterInstance, days: list[dt.date], now: pd.Timestamp,
                   cursor: dict) -> tuple[dict[str, list[str]], dict]:
    """{day: reasons} of the days whose inputs changed after they were materialised, and the updated
    `landing`/`crm` parts of the cursor (what was requested, so it is not requested twice)."""
    late: dict[str, list[str]] = {}
    requested_landing = dict(cursor.get("landing", {}))
    requested_crm = dict(cursor.get("crm", {}))
    settled = now - pd.Timedelta(minutes=settings.late_data_settle_minutes)
    for source in LANDING_SOURCES:
        recorded = latest_metadata(instance, dg.AssetKey(["ingest", source]), [d.isoformat() for d in days])
        for day_iso, metadata in recorded.items():
            if "landing_files" not in metadata:
                continue
            files = late_landing_files(source, dt.date.fromisoformat(day_iso),
                                       recorded_listing(metadata["landing_files"]), settings, settled)
            if not files:
                continue
            token = hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()[:16]
            if requested_landing.get(f"{source}/{day_iso}") == token:
                continue
            requested_landing[f"{source}/{day_iso}"] = token
            late.setdefault(day_iso, []).append(f"{source}: {len(files)} late file(s)")
    for table in CRM_TABLES:
        recorded = latest_metadata(instance, extraction_key(table), [d.isoformat() for d in days])
        if not recorded:
            continue
        now_counts = crm_rows_per_day(table, min(days), max(days), settings)
        for day_iso, metadata in recorded.items():
            seen, current = metadata.get("rows_on_day"), now_counts.get(day_iso, 0)
            if seen is None or current <= int(seen) or requested_crm.get(f"{table}/{day_iso}") == current:
                continue
            requested_crm[f"{table}/{day_iso}"] = current
            late.setdefault(day_iso, []).append(f"crm_{table}: {current - int(seen)} late row(s)")
    oldest = min(days).isoformat()

    def recent(requested: dict) -> dict:  # forget days that left the lookback
        return {k: v for k, v in requested.items() if k.rsplit("/", 1)[1] >= oldest}

    return late, {"landing": recent(requested_landing), "crm": recent(requested_crm)}


def identity_changes(settings: Settings, days: list[dt.date], cursor: dict) -> tuple[list[str], dict, bool]:
    """Days (within `days`) whose identity_merges partition has changes this sensor has not acted on, the new
    `identity` cursor part ({day: content hash}), and whether this was the first look (then nothing is acted
    on: the history present when the sensor starts counts as handled)."""
    files = storage.partition_files(settings.warehouse_root, IDENTITY_MERGES_PATH, settings.storage_options)
    fs, _ = storage.filesystem(settings.warehouse_root, settings.storage_options)
    first_look = "identity" not in cursor
    seen = dict(cursor.get("identity", {}))
    changed = []
    wanted = {d.isoformat() for d in days}
    for day_iso, info in files.items():
        if day_iso not in wanted:
            continue
        data = fs.cat_file(info["name"])  # small: one day's merges and splits
        digest = hashlib.sha256(data).hexdigest()[:16]
        if seen.get(day_iso) == digest:
            continue
        seen[day_iso] = digest
        table = storage.read_table(fs, info["name"], ["kind"])
        if table.num_rows and not first_look:
            changed.append(day_iso)
    oldest = min(days).isoformat()
    return changed, {k: v for k, v in seen.items() if k >= oldest}, first_look


def restatement_partitions(late: dict[str, list[str]], identity_days: list[str], latest: dt.date,
                           all_keys: list[dg.AssetKey], settings: Settings) -> set[AssetKeyPartitionKey]:
    """The asset partitions to re-materialise for the late days and identity changes."""
    wanted: set[AssetKeyPartitionKey] = set()
    for day_iso in late:
        first = dt.date.fromisoformat(day_iso)
        last = min(latest, first + dt.timedelta(days=settings.restate_days - 1))
        wanted |= {AssetKeyPartitionKey(k, d.isoformat()) for d in _days(first, last) for k in all_keys}
    if settings.identity_restate_days:
        counting = person_counting_keys()
        for day_iso in identity_days:
            changed = dt.date.fromisoformat(day_iso)
            first = max(settings.start_date, changed - dt.timedelta(days=settings.identity_restate_days))
            if first < changed:
                earlier = _days(first, changed - dt.timedelta(days=1))
                wanted |= {AssetKeyPartitionKey(k, d.isoformat()) for d in earlier for k in counting}
                # membership `since` chains from day to day: restate it up to the newest day
                wanted |= {AssetKeyPartitionKey(MEMBERSHIP_KEY, d.isoformat()) for d in _days(first, latest)}
    return wanted


def evaluate(settings: Settings, instance: dg.DagsterInstance, asset_graph, cursor_text: str | None,
             now: pd.Timestamp) -> tuple[dg.RunRequest | dg.SkipReason, str]:
    """One evaluation of the sensor: the request (or why none) and the new cursor."""
    cursor = json.loads(cursor_text) if cursor_text else {}
    materialised = instance.get_materialized_partitions(EVENTS_KEY)
    if not materialised:
        return dg.SkipReason("nothing is materialised yet"), json.dumps(cursor)
    latest = dt.date.fromisoformat(max(materialised))
    first = max(settings.start_date, latest - dt.timedelta(days=settings.late_data_lookback_days - 1))
    days = [d for d in _days(first, latest) if d.isoformat() in materialised]
    late, late_cursor = find_late_days(settings, instance, days, now, cursor)
    identity_days, identity_cursor, _ = identity_changes(settings, _days(first, latest), cursor)
    new_cursor = json.dumps({**late_cursor, "identity": identity_cursor}, sort_keys=True)
    all_keys = sorted(asset_graph.materializable_asset_keys, key=lambda k: k.to_user_string())
    wanted = restatement_partitions(late, identity_days, latest, all_keys, settings)
    if not wanted:
        return dg.SkipReason(f"no late data or identity changes in {days[0]}..{latest}"), new_cursor
    reasons = [f"{d}: {'; '.join(r)}" for d, r in sorted(late.items())]
    reasons += [f"{d}: identity changes" for d in identity_days]
    subset = AssetGraphSubset.from_asset_partition_set(wanted, asset_graph)
    request = dg.RunRequest.for_asset_graph_subset(subset, tags={RESTATEMENT_TAG: " | ".join(reasons)[:1000]})
    return request, new_cursor


def build_restatement_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Re-materialises the days whose landing files or CRM rows arrived late, and restates "
                           "the person-counting KPIs of the days before an identity change (one backfill per "
                           "evaluation; see crm_pipeline/restatement.py).")
    def restatement_sensor(context: dg.SensorEvaluationContext):
        refusal = settings.automated_run_refusal()
        if refusal:  # its backfill's runs would be refused at their start: say why here instead
            return dg.SkipReason(refusal)
        request, cursor = evaluate(settings, context.instance, context.repository_def.asset_graph, context.cursor,
                                   pd.Timestamp.now(tz="UTC"))
        context.update_cursor(cursor)
        if isinstance(request, dg.SkipReason):
            return request
        context.log.info(f"restating: {request.tags.get(RESTATEMENT_TAG)}")
        return request

    return restatement_sensor


"""docs/checks.md: every asset and the checks that run with it, generated from the Definitions.

Regenerate with `crm-pipeline catalog`; a test fails when the committed file is out of date.
"""

import datetime as dt
from pathlib import Path

import dagster as dg

from crm_pipeline.settings import Settings

CHECKS_PATH = Path(__file__).resolve().parents[1] / "docs" / "checks.md"
FRESHNESS_DESCRIPTION = ("warns when yesterday's partition (in the reporting timezone) is missing once the schedule's "
                         "hour + 4 h has passed; a world whose last day is older warns until its missing days run")
HEADER = """# Checks per asset

Generated from the Definitions by `crm-pipeline catalog`; do not edit by hand.

Every check below runs inline with its asset's materialisation, for the partition it wrote, except
`freshness_check`, which the `freshness_checks_sensor` evaluates continuously (yesterday's partition must exist by
the schedule's hour + 4 h; a warning naming the missing partition). **Blocking** checks stop the assets that read
a failed partition; the others record an error or a warning and let the run go on. KPI assets also carry
`headline_within_usual_range` (a warning when the headline moves more than `CRM_ANOMALY_THRESHOLD` robust standard
deviations from its trailing days). `pipeline_health` counts the day's outcomes.

"""


def render() -> str:
    from crm_pipeline.definitions import build_definitions

    settings = Settings(landing_root="landing", warehouse_root="warehouse", database_url="sqlite://",
                        start_date=dt.date(2026, 1, 1))
    defs = build_definitions(settings)
    specs: dict[dg.AssetKey, list[dg.AssetCheckSpec]] = {}
    for assets_def in defs.assets or []:
        for spec in assets_def.check_specs:
            specs.setdefault(spec.asset_key, []).append(spec)
    lines = [HEADER.rstrip("\n") + "\n", "| asset | group | checks (blocking in bold) |", "|---|---|---|"]
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        names = sorted(specs.get(spec.key, []), key=lambda c: c.name)
        cells = ", ".join(f"**`{c.name}`**" if c.blocking else f"`{c.name}`" for c in names)
        lines.append(f"| `{spec.key.to_user_string()}` | {spec.group_name} | {cells}, `freshness_check` |")
    lines += ["", "## What each check asserts", "",
              "A check that warns (or errors without blocking) says here when that is expected; the same text is "
              "the check's description in the Dagster UI.", "", "| check | description |", "|---|---|"]
    described: dict[str, dict[str, list[str]]] = {}
    for check_specs in specs.values():
        for c in check_specs:
            described.setdefault(c.name, {}).setdefault(c.description or "", []).append(c.asset_key.to_user_string())
    described["freshness_check"] = {FRESHNESS_DESCRIPTION: []}
    for name in sorted(described):
        texts = described[name]
        cell = next(iter(texts)) if len(texts) == 1 else "<br>".join(
            f"{', '.join(f'`{a}`' for a in sorted(assets))}: {text}" for text, assets in sorted(texts.items()))
        lines.append(f"| `{name}` | {cell} |")
    return "\n".join(lines) + "\n"


def write(path: Path = CHECKS_PATH) -> Path:
    path.write_text(render())
    return path

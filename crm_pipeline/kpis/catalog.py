"""The KPI catalog (docs/kpi_catalog.md), generated from the declarations so it never drifts from the code.

Regenerate with `crm-pipeline catalog`; a test fails when the committed file is out of date.
"""

from pathlib import Path

from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.kpis.framework import KpiDefinition

CATALOG_PATH = Path(__file__).resolve().parents[2] / "docs" / "kpi_catalog.md"


def _entry(kpi: KpiDefinition) -> str:
    dims = "; ".join(f"`{d.name}` in {{{', '.join(d.values)}}}" if d.values else f"`{d.name}` (open)"
                     for d in kpi.dimensions) or "none"
    headline = ", ".join(f"{k} = {v}" for k, v in kpi.headline.items()) or "its own total row (no metric or window dimension)"
    inputs = ", ".join(f"`{'/'.join(i.key)}`{i.window_text}" for i in kpi.inputs)
    return "\n".join([
        f"## `kpi/{kpi.name}` ({kpi.family}, seed {kpi.seed})",
        "",
        kpi.description,
        "",
        f"- **Formula**: {kpi.formula}",
        f"- **Window**: {kpi.window}; `window_complete` is false while the window reaches before CRM_START_DATE "
        f"({kpi.window_days} d)",
        f"- **Population**: {kpi.population}",
        f"- **Exclusions**: {kpi.exclusions}",
        f"- **Unit**: {kpi.unit}",
        f"- **Dimensions**: {dims}",
        f"- **Headline (total row)**: {headline}",
        f"- **Inputs**: {inputs}",
        *([f"- **Persons**: remapped through the identity changes logged from {kpi.remap_days or kpi.window_days} d "
           "before D up to the newest identity partition (docs/outputs.md 2.2)"] if kpi.needs_remap else []),
        "- **Column lineage**: " + "; ".join(
            f"`{column}` ← " + ", ".join(f"`{'/'.join(key)}.{name}`" for key, name in deps)
            for column, deps in kpi.column_lineage().items()),
        *([f"- **Target**: a warning-severity check fires when the headline is below {kpi.warn_below}"]
          if kpi.warn_below is not None else []),
        "",
    ])


def render() -> str:
    header = ("# KPI catalog\n\nGenerated from the KPI declarations by `crm-pipeline catalog`; do not edit by hand. "
              "Output conventions (columns, total row, units, nulls) follow the specification's section 1: every "
              "KPI is `<warehouse>/kpi/<name>/date=YYYY-MM-DD/part.parquet` with its dimension columns, then "
              "`numerator`, `denominator`, `value`, `unit`. Every KPI writes a partition for every day from "
              "`CRM_START_DATE`, also for a day (or a deployment) without the data it counts, and the fixed "
              "dimension values listed below get their rows every day. On an empty population a count is 0 with a "
              "null denominator, a quotient keeps its numerator and denominator as counted (0 and 0) with a null "
              "value (never NaN or infinity), and a median has a null numerator, a denominator of 0 and a null "
              "value.\n\n")
    return header + "\n".join(_entry(kpi) for kpi in sorted(ALL_KPIS, key=lambda k: (k.family, k.name)))


def write(path: Path = CATALOG_PATH) -> Path:
    path.write_text(render())
    return path

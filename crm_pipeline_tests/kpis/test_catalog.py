from crm_pipeline.kpis.assets import ALL_KPIS
from crm_pipeline.kpis.catalog import CATALOG_PATH, render


def test_the_committed_catalog_is_up_to_date():
    assert CATALOG_PATH.read_text() == render(), "run `crm-pipeline catalog` and commit docs/kpi_catalog.md"


def test_every_kpi_is_documented_in_the_catalog():
    text = render()
    for kpi in ALL_KPIS:
        assert f"## `kpi/{kpi.name}`" in text
        assert kpi.description.startswith("One row per")


def test_the_committed_checks_document_is_up_to_date():
    from crm_pipeline import checks_catalog

    assert checks_catalog.CHECKS_PATH.read_text() == checks_catalog.render(), \
        "run `crm-pipeline catalog` and commit docs/checks.md"

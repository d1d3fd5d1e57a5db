"""The landing zone's folder layout: `<landing_root>/<source>/date=YYYY-MM-DD/<files>`."""

import datetime as dt
import re

from crm_pipeline.settings import Settings
from crm_pipeline.storage.fs import filesystem, join

DAY_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})$")


def list_landing_days(source: str, settings: Settings) -> list[dt.date]:
    """The days that have a folder for `source`, sorted; none when the source has no folder at all."""
    fs, root = filesystem(join(settings.landing_root, source), settings.storage_options)
    if not fs.exists(root):
        return []
    days = []
    for entry in fs.ls(root, detail=False):
        match = DAY_FOLDER.search(entry.rstrip("/"))
        if match:
            days.append(dt.date.fromisoformat(match.group(1)))
    return sorted(days)


def landing_root_exists(settings: Settings) -> bool:
    """Whether the landing root holds anything at all (a source folder, a file).

    A source without a folder is an empty source (an orders-only shop has no events), but a root without
    anything is a configuration error: a mistyped CRM_LANDING_ROOT would read as days without data. Object
    stores have no folders (a prefix exists only through the objects under it), so "nothing under the root" is
    the test everywhere: a missing or empty local folder, an S3 prefix with no object under it.
    """
    fs, root = filesystem(settings.landing_root, settings.storage_options)
    fs.invalidate_cache(root)  # object stores cache listings per file-system instance
    try:
        return bool(fs.isdir(root) and fs.ls(root, detail=False))
    except FileNotFoundError:
        return False

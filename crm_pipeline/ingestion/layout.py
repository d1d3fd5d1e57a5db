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

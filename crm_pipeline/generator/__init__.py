"""Synthetic CRM world generator: landing files, a CRM database and the ground truth to score against."""

from .bad_input import REASONS
from .scales import SCALES, Scale
from .world import WorldSummary, generate_world

__all__ = ["REASONS", "SCALES", "Scale", "WorldSummary", "generate_world"]

"""Scale presets of the synthetic world (README, "Benchmark")."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """How big a world is: persons, default length and how busy each person is.

    `activity` multiplies every behavioural rate (sessions, ad exposure, app use), so the tiny preset
    stays at a few hundred events a day while keeping the same mix of behaviours as the big ones.
    """

    name: str
    persons: int
    default_days: int
    activity: float = 1.0
    # CRM rows created per day (leads, tickets, survey responses) per 10k persons, with a floor so that
    # the tiny world still has a handful of each
    crm_rate_per_10k: float = 1.0
    # simulate the touches of the 29 days before the start (unexported) so purchases start at their
    # steady rate; a test of the causal model turns it off to see every touch that counted
    warm_start: bool = True


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", persons=300, default_days=10),
    "small": Scale("small", persons=10_000, default_days=30),
    "medium": Scale("medium", persons=200_000, default_days=7),
    "large": Scale("large", persons=1_000_000, default_days=2),
}


def resolve_scale(scale: "str | Scale") -> Scale:
    """A preset by name, or a custom Scale passed through (tests use small custom worlds)."""
    if isinstance(scale, Scale):
        return scale
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}") from None

"""The tests' fixed world: the platform's today is pinned, so every test sees the same dates.

`conftest.py` sets ML_ASSETS_TODAY to TODAY before any project module is imported; commands the
tests start inherit it. The synthetic generator seeds each day by its date, so fixed dates give
the same data, and the same first model, on any day the suite runs.
"""

from datetime import date, timedelta

from ml_assets.synthetic.narratives import NarrativeSignal

# A day in the era of dispute labels (the CFPB stopped collecting them in April 2017), after
# every real extract's last day (2017-04-22).
TODAY = date(2017, 5, 1)
YESTERDAY = TODAY - timedelta(days=1)
# Narratives in most complaints, wording twice as telling as the default world: a model learns
# it from a couple of weeks of a few hundred complaints a day.
LEARNABLE = NarrativeSignal(share=0.7, strength=2.0)
# The first model of a fixture's world must clear the blessing's AUC floor by at least this.
FIRST_MODEL_MARGIN = 0.10


def days_up_to_yesterday(count: int) -> list[date]:
    """The `count` days ending yesterday, oldest first."""
    return [YESTERDAY - timedelta(days=n) for n in range(count - 1, -1, -1)]

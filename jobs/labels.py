"""Label builders: what the churn and demand models learn to predict, as of observation dates.

A label row says: at ``label_time`` (midnight after the observation date, when that day's features
are known), what happened in the following window. Features are joined as of ``label_time``, the
label window starts at or after it, and the window must lie inside the data: the guards refuse
anything else, because an overlap leaks the answer into the features and a window cut off by the
end of the data turns "unknown" into "churned" or "zero demand".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.errors import LakecartError

LABEL_TIME = "label_time"


class LabelWindowError(LakecartError, ValueError):
    """Feature and label windows overlap, or a label window runs past the data."""


def check_windows(observations: Sequence[date], horizon_days: int, data_end: date, label_start_offset: int = 1) -> None:
    """``label_start_offset``: days after the observation date the label window starts (1: the next
    day). Features are as of ``label_time`` = the start of that next day, so an offset below 1 would
    count the observation day itself in both the features and the label."""
    if horizon_days < 1:
        raise LabelWindowError(f"the label horizon must be at least 1 day, got {horizon_days}")
    if label_start_offset < 1:
        raise LabelWindowError(
            f"the label window would start {label_start_offset} day(s) after the observation date, inside "
            "the feature window (features are known at midnight after it): labels would leak into features"
        )
    if not observations:
        raise LabelWindowError("no observation dates")
    late = [d for d in observations if d + timedelta(days=label_start_offset + horizon_days - 1) > data_end]
    if late:
        raise LabelWindowError(
            f"label windows of {horizon_days} days after {late[0]}..{late[-1]} run past the data (ends {data_end}); "
            f"the last usable observation date is {data_end - timedelta(days=label_start_offset + horizon_days - 1)}"
        )


def observation_dates(first: date, last: date, every_days: int) -> list[date]:
    """Every ``every_days`` days from ``last`` back to ``first``, oldest first: anchored at ``last``
    (the cut), so the newest observation is always the cut, whatever the span."""
    if every_days < 1:
        raise LabelWindowError(f"observation dates must be at least 1 day apart, got {every_days}")
    days = []
    day = last
    while day >= first:
        days.append(day)
        day -= timedelta(days=every_days)
    return days[::-1]


def check_split_windows(train: Sequence[date], test: Sequence[date], horizon_days: int) -> None:
    """Refuse training observations whose label window reaches past the first held-out observation
    date: their labels would count purchases inside the held-out period the model is judged on."""
    if not test:
        raise LabelWindowError("no held-out observation date")
    leaking = [d for d in train if d + timedelta(days=horizon_days) > min(test)]
    if leaking:
        raise LabelWindowError(
            f"training label windows of {horizon_days} days after {', '.join(map(str, leaking))} reach past the "
            f"held-out observation date {min(test)}: the newest allowed training observation is "
            f"{min(test) - timedelta(days=horizon_days)}"
        )


def observation_plan(
    cut: date, span_days: int, every_days: int, horizon_days: int, test_days: int
) -> tuple[list[date], list[date]]:
    """(training, held-out) observation dates, oldest first.

    Anchored at ``cut`` (the newest observation, whose label window ends on the data's last day):
    ``cut``, ``cut - every_days``, ... within ``span_days``. Held out: those within ``test_days`` of
    the cut. Training: the others whose label window ends on or before the first held-out
    observation date (an embargo of ``horizon_days``), so no training label overlaps the held-out
    labels; observations inside the embargo are left out. Refused when none is left for training.
    """
    if span_days < 1 or test_days < 1:
        raise LabelWindowError(f"span and held-out days must be at least 1, got {span_days} and {test_days}")
    dates = observation_dates(cut - timedelta(days=span_days - 1), cut, every_days)
    test = [d for d in dates if d > cut - timedelta(days=test_days)]
    train = [d for d in dates if d + timedelta(days=horizon_days) <= test[0]]
    if not train:
        raise LabelWindowError(
            f"no training observation is left: with a {horizon_days}-day horizon, training observations must be on "
            f"or before {test[0] - timedelta(days=horizon_days)} (the held-out observation {test[0]} minus the "
            f"horizon), but the span of {span_days} days starts {dates[0]}; give more --days"
        )
    check_split_windows(train, test, horizon_days)
    return train, test


def churn_labels(
    events: DataFrame, observations: Sequence[date], horizon_days: int, data_end: date, active_days: int = 90
) -> DataFrame:
    """One row per (customer, observation date): ``churned`` = 1 when a user who bought within
    ``active_days`` up to the observation date makes no purchase in the next ``horizon_days``."""
    check_windows(observations, horizon_days, data_end)
    obs = events.sparkSession.createDataFrame([(d,) for d in observations], "observation_date date")
    purchases = events.where((F.col("event_type") == "purchase") & F.col("user_id").isNotNull()).select(
        "user_id", "event_date"
    )
    joined = obs.join(
        purchases,
        (purchases.event_date > F.date_sub(obs.observation_date, active_days))
        & (purchases.event_date <= F.date_add(obs.observation_date, horizon_days)),
    )
    past = F.col("event_date") <= F.col("observation_date")
    future = F.col("event_date") > F.col("observation_date")
    return (
        joined.groupBy("user_id", "observation_date")
        .agg(F.max(past.cast("int")).alias("_customer"), F.max(future.cast("int")).alias("_bought_again"))
        .where(F.col("_customer") == 1)
        .select(
            "user_id",
            "observation_date",
            F.to_timestamp(F.date_add("observation_date", 1)).alias(LABEL_TIME),
            (1 - F.col("_bought_again")).cast("int").alias("churned"),
        )
    )


DEMAND_HORIZONS = (7, 14, 28)


def demand_labels(
    events: DataFrame,
    observations: Sequence[date],
    data_end: date,
    key: str = "item_id",
    horizons: Sequence[int] = DEMAND_HORIZONS,
    active_days: int = 28,
) -> DataFrame:
    """One row per (item or category, observation date): units sold in the next ``h`` days for each
    horizon. Items seen (any event) in the ``active_days`` up to the observation date are included,
    so a future with no sale is an explicit 0."""
    check_windows(observations, max(horizons), data_end)
    obs = events.sparkSession.createDataFrame([(d,) for d in observations], "observation_date date")
    longest = max(horizons)
    scoped = events.where(F.col(key).isNotNull()).select(
        key, "event_date", F.when(F.col("event_type") == "purchase", F.col("quantity")).otherwise(0).alias("units")
    )
    joined = obs.join(
        scoped,
        (scoped.event_date > F.date_sub(obs.observation_date, active_days))
        & (scoped.event_date <= F.date_add(obs.observation_date, longest)),
    )
    ahead = F.datediff("event_date", "observation_date")
    return (
        joined.groupBy(key, "observation_date")
        .agg(
            F.max((ahead <= 0).cast("int")).alias("_seen"),
            *[
                F.sum(F.when((ahead > 0) & (ahead <= h), F.col("units")).otherwise(0))
                .cast("long")
                .alias(f"units_next_{h}d")
                for h in horizons
            ],
        )
        .where(F.col("_seen") == 1)
        .select(
            key,
            "observation_date",
            F.to_timestamp(F.date_add("observation_date", 1)).alias(LABEL_TIME),
            *[f"units_next_{h}d" for h in horizons],
        )
    )

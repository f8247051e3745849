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
    days = []
    day = first
    while day <= last:
        days.append(day)
        day += timedelta(days=every_days)
    return days


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

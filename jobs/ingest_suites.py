"""The Great Expectations suites of ingestion: what a landing (bronze) or a staged batch must satisfy
before anyone reads it. The contract checks of ``ingest_transforms`` are per record; these are about
the batch: keys, uniqueness, ranges, completeness of optional fields, each raw day's yield.
``lakecart.jobs.ingest`` re-exports every public name.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakecart.config import get_settings
from lakecart.jobs.ingest_transforms import EVENT_TYPES, ITEM_EVENT_TYPES, MAX_PRICE

# The contract checks above are per record; these are about the batch: keys, uniqueness, ranges,
# completeness of optional fields.


RECORD_LIKE_SHARE = 0.95  # share of a file's lines that must at least look like a JSON record


def bronze_file_profile(bronze: DataFrame) -> DataFrame:
    """One row per landed file: its ingest metadata, how many records it holds, how many have no text
    and what share looks like a record. The bronze gate validates this profile, one pass over the
    landing with no cache of the raw text, and a bad file shows up by name in the Data Docs."""
    return bronze.groupBy("source_file", "batch_id", "ingest_date").agg(
        F.count(F.lit(1)).alias("records"),
        F.sum(F.col("raw").isNull().cast("long")).alias("records_without_text"),
        F.avg(F.coalesce(F.col("raw").rlike(r"^\s*\{"), F.lit(False)).cast("double")).alias("record_like_share"),
    )


def bronze_expectations() -> list:
    """Bronze keeps raw text, so its suite guards the landing itself, file by file (over
    ``bronze_file_profile``): metadata complete, no empty file, and the records look like records (a
    wholesale format break, such as an HTML error page saved as a .jsonl file, fails here before
    silver parses it)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("source_file", "batch_id", "ingest_date")],
        gxe.ExpectColumnValuesToBeUnique(column="source_file"),
        gxe.ExpectColumnValuesToMatchRegex(column="batch_id", regex=r"^\d{8}-[0-9a-f]{12}$"),
        gxe.ExpectColumnValuesToBeBetween(column="records", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="records_without_text", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="record_like_share", min_value=RECORD_LIKE_SHARE),
    ]


# Optional in the contract, but a source that sends them and then stops (or sends them on only part of
# the records) has an incident: field -> the events it is expected on (None: all).
SENT_FIELDS: dict[str, tuple[str, ...] | None] = {
    "category": ITEM_EVENT_TYPES,
    "price": ITEM_EVENT_TYPES,
    "session_id": None,
}
MOSTLY_SENT = 0.99


def silver_events_expectations(sent: frozenset[str] | None = None) -> list:
    """The staged events suite. ``sent``: the optional fields of ``SENT_FIELDS`` this source sends
    (``run_validate`` works it out from the batch and the published reference); each must be on 99%
    of the events it belongs to. A source that never sends one (an export without prices or sessions)
    is not held to it: the contract makes these fields optional. ``None``: all of them."""
    import great_expectations.expectations as gxe

    sent = frozenset(SENT_FIELDS) if sent is None else sent
    completeness = []
    for column in sorted(sent & set(SENT_FIELDS)):
        kinds = SENT_FIELDS[column]
        condition = {}
        if kinds:
            condition = {
                "row_condition": f"event_type IN ({', '.join(repr(t) for t in kinds)})",
                "condition_parser": "spark",
            }
        completeness.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=MOSTLY_SENT, **condition))
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("event_id", "event_type", "event_time", "session_key")],
        # The contract: a user id, else an anonymous id (signed-out visitors).
        gxe.ExpectColumnValuesToNotBeNull(
            column="user_id", row_condition="anonymous_id IS NULL", condition_parser="spark"
        ),
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
        gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=MAX_PRICE),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, max_value=_max_quantity()),
        *completeness,
        gxe.ExpectColumnValuesToNotBeNull(column="user_id", mostly=0.5),
    ]


MAX_QUARANTINED_SHARE = 0.05  # more than 5% of a day's raw records breaking the contract is an incident
SHARE_MIN_RECORDS = 20  # the share is judged on days with at least this many raw records (1 of 4 says little)


def staged_days_expectations(empty_days_ok: bool = False) -> list:
    """Per raw day of the staged batch (``validate.staged_day_profile``): the day brought usable
    records (unless the source declares empty days normal, or its files hold no record at all: a closed
    day) and, on days of ``SHARE_MIN_RECORDS`` raw
    records or more, at most ``MAX_QUARANTINED_SHARE`` of them were quarantined."""
    import great_expectations.expectations as gxe

    return [
        # A day whose files hold no record at all is one the export says nothing happened on (an
        # importer writes an empty file for a closed day); a day of records none of which is usable fails.
        *(
            []
            if empty_days_ok
            else [
                gxe.ExpectColumnValuesToBeBetween(
                    column="accepted", min_value=1, row_condition="raw_records > 0", condition_parser="spark"
                )
            ]
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="quarantined_share",
            min_value=0,
            max_value=MAX_QUARANTINED_SHARE,
            row_condition=f"raw_records >= {SHARE_MIN_RECORDS}",
            condition_parser="spark",
        ),
    ]


def _max_quantity() -> int:
    """``ingest.max_quantity`` of the process settings: a suite is built by name (``tables``), so it
    reads the settings the command runs with, the same the contract rules are given."""
    return get_settings().ingest.max_quantity


def silver_order_lines_expectations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("order_id", "user_id", "item_id", "order_time")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["order_id", "item_id"]),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1, max_value=_max_quantity()),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, max_value=MAX_PRICE),
        gxe.ExpectColumnValuesToBeBetween(column="revenue", min_value=0),
    ]


def silver_users_expectations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        gxe.ExpectColumnValuesToBeUnique(column="user_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="signup_time"),
        # No completeness check on region or segment: both are optional in the contract, and a real
        # customer table may have neither (Complete Journey's demographics carry no region).
    ]


def silver_promotions_expectations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("item_id", "start_date", "end_date")],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("display", "mailer")],
        # store_id null means every store: one such row per item and start date, like any store's.
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["item_id", "store_id", "start_date"]),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="end_date", column_B="start_date", or_equal=True),
        gxe.ExpectColumnValuesToBeBetween(column="price_cut", min_value=0, max_value=MAX_PRICE),
    ]

"""The views computed from order lines and promotions, on tiny inline tables against values computed
by hand; and their materialisation on a lake that has no clickstream at all."""

from datetime import date, datetime, timedelta

import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakecart import tables
from lakecart.features import (
    REGISTRY,
    category_sales_v1,
    customer_category_share_v1,
    customer_item_repeat_v1,
    customer_orders_v1,
    item_promotions_v2,
    item_sales_v1,
)
from lakecart.features.definitions import EVENTS_SOURCE, ORDER_LINES_SOURCE, PROMOTIONS_SOURCE, FeatureView
from lakecart.features.orders import AHEAD, PROMOTION_DAYS, PROMOTION_LEAD
from lakecart.jobs import feature_store, materialize
from lakecart.jobs.materialize import compute_view, run_materialize
from tests.features.test_views import rows_by_key

ORDER_COLUMNS = (
    "order_id string, user_id string, item_id string, quantity int, unit_price double, discount double, "
    "order_time timestamp, revenue double, extra map<string,string>, order_date date, ingest_date date"
)
CATALOGUE_COLUMNS = "category string, category_levels array<string>, brand string"
PROMOTION_COLUMNS = (
    "item_id string, store_id string, start_date date, end_date date, display boolean, mailer boolean, "
    "price_cut double, extra map<string,string>, ingest_date date"
)
# Leaf category and its path, top level first (any names: nothing may assume a shop's ids).
CATALOGUE = {
    "milk": ("dairy", ["food", "dairy"], "cowco"),
    "bread": ("bakery", ["food", "bakery"], None),
    "soap": ("hygiene", ["home", "hygiene"], "suds"),
}


def D(day, month=3):  # noqa: N802 - reads like the dates in the comments
    return date(2026, month, day)


def order_lines(rows):
    """rows: (order, user, item, quantity, unit_price, discount, order day[, ingest day][, extra]);
    revenue = unit_price x quantity - discount, as silver computes it."""
    out = []
    for order, user, item, quantity, price, discount, day, *rest in rows:
        ingest = rest[0] if rest and rest[0] is not None else day
        extra = rest[1] if len(rest) > 1 else None
        time = datetime.combine(day, datetime.min.time()) + timedelta(hours=10)
        out.append(
            (order, user, item, quantity, price, discount, time, price * quantity - discount, extra, day, ingest)
        )
    return out


def joined(spark, rows):
    """Order lines as transforms get them: joined with the catalogue's category, levels and brand."""
    return spark.createDataFrame(
        [(*r, *CATALOGUE.get(r[2], (None, None, None))) for r in order_lines(rows)],
        f"{ORDER_COLUMNS}, {CATALOGUE_COLUMNS}",
    )


def promotions(spark, rows):
    """rows: (item, store, first day, last day, display, mailer, price_cut, ingest day)."""
    return spark.createDataFrame(
        [
            (item, store, first, last, show, mail, cut, None, known)
            for item, store, first, last, show, mail, cut, known in rows
        ],
        PROMOTION_COLUMNS,
    )


NO_COUPON, COUPON = {"coupon_disc": "0"}, {"coupon_disc": "-0.5"}
# ann: o1 on Mar 1 (milk 2 x 1.5; bread 2.0 less 0.5 with a coupon), o2 on Mar 8 (milk 1.5),
# o3 on Mar 18 (milk 1.5; soap 4.0 less 1.0). bob: o4 on Feb 1 (bread 2.0), o5 on Mar 20 (milk 1.5,
# no coupon field at all).
BASKETS = [
    ("o1", "ann", "milk", 2, 1.5, 0.0, D(1), None, NO_COUPON),
    ("o1", "ann", "bread", 1, 2.0, 0.5, D(1), None, COUPON),
    ("o2", "ann", "milk", 1, 1.5, 0.0, D(8), None, NO_COUPON),
    ("o3", "ann", "milk", 1, 1.5, 0.0, D(18), None, NO_COUPON),
    ("o3", "ann", "soap", 1, 4.0, 1.0, D(18), None, NO_COUPON),
    ("o4", "bob", "bread", 1, 2.0, 0.0, D(1, month=2)),
    ("o5", "bob", "milk", 1, 1.5, 0.0, D(20)),
]


@pytest.fixture(scope="module")
def baskets(spark):
    return joined(spark, BASKETS)


def test_customer_orders_rfm_rhythm_baskets_and_repeat_rate(spark, baskets):
    rows = rows_by_key(compute_view(customer_orders_v1, baskets, D(20), D(20)), "user_id")
    ann = rows["ann"]
    # Mar 20: ann's order days are 19 (Mar 1), 12 (Mar 8) and 2 (Mar 18) days back.
    assert ann["days_since_last_order"] == 2 and ann["days_since_first_order_180d"] == 19
    assert (ann["orders_30d"], ann["orders_180d"], ann["units_30d"]) == (3, 3, 6)
    assert ann["spend_30d"] == pytest.approx(3.0 + 1.5 + 1.5 + 1.5 + 3.0)  # 10.5
    # Gaps of 7 and 10 days: mean (19 - 2) / 2 = 8.5; the last gap is 10; 2 days since the last order.
    assert ann["mean_days_between_orders_180d"] == pytest.approx(8.5)
    assert ann["last_gap_vs_mean_180d"] == pytest.approx(10 / 8.5)
    assert ann["overdue_ratio_180d"] == pytest.approx(2 / 8.5)
    # 5 lines, 6 units, 10.5 spent in 3 orders.
    assert ann["lines_per_order_90d"] == pytest.approx(5 / 3)
    assert ann["units_per_order_90d"] == 2.0 and ann["spend_per_order_90d"] == pytest.approx(3.5)
    # Discounts 0.5 + 1.0 of a list value of 3 + 2 + 1.5 + 1.5 + 4 = 12; one order of 3 used a coupon.
    assert ann["discount_share_90d"] == pytest.approx(1.5 / 12)
    assert ann["coupon_order_share_90d"] == pytest.approx(1 / 3)
    assert (ann["distinct_items_90d"], ann["distinct_categories_90d"]) == (3, 3)
    # Milk in o2 and o3 had been bought before (o1): 2 repeat lines of 5.
    assert ann["repeat_line_share_180d"] == pytest.approx(2 / 5)
    # food: 3.0 + 1.5 + 1.5 + 1.5 = 7.5 of 10.5 (home: the soap, 3.0).
    assert ann["top_department_spend_share_180d"] == pytest.approx(7.5 / 10.5)

    bob = rows["bob"]
    # Feb 1 is 47 days before Mar 20: inside 90 days, not 30.
    assert (bob["orders_30d"], bob["orders_90d"], bob["spend_90d"]) == (1, 2, 3.5)
    assert bob["mean_days_between_orders_180d"] == 47.0 and bob["overdue_ratio_180d"] == 0.0
    assert bob["last_gap_vs_mean_180d"] == 1.0
    assert bob["coupon_order_share_90d"] is None  # bob's shop lines carry no coupon field
    assert bob["repeat_line_share_180d"] == 0.0
    assert bob["available_at"] == datetime(2026, 3, 21)


def test_customer_item_repeat_interval_and_days_overdue(spark, baskets):
    rows = rows_by_key(compute_view(customer_item_repeat_v1, baskets, D(20), D(20)), "user_id", "item_id")
    milk = rows[("ann", "milk")]
    assert (milk["purchases_180d"], milk["units_180d"], milk["days_since_last_purchase"]) == (3, 4, 2)
    assert milk["mean_days_between_purchases_180d"] == pytest.approx(8.5)  # (19 - 2) / 2
    assert milk["days_overdue_180d"] == pytest.approx(2 - 8.5)  # bought again sooner than usual
    soap = rows[("ann", "soap")]
    assert soap["purchases_180d"] == 1 and soap["mean_days_between_purchases_180d"] is None
    assert soap["days_overdue_180d"] is None
    assert rows[("bob", "bread")]["days_since_last_purchase"] == 47


def test_customer_category_share(spark, baskets):
    rows = rows_by_key(compute_view(customer_category_share_v1, baskets, D(20), D(20)), "user_id", "category")
    # ann over 90 days: dairy 3.0 + 1.5 + 1.5 = 6.0, bakery 1.5, hygiene 3.0 of 10.5.
    assert rows[("ann", "dairy")]["spend_share_90d"] == pytest.approx(6.0 / 10.5)
    assert rows[("ann", "dairy")]["orders_90d"] == 3
    assert rows[("ann", "hygiene")]["spend_90d"] == 3.0
    assert rows[("bob", "dairy")]["spend_share_90d"] == pytest.approx(1.5 / 3.5)


# milk: ann 2 on Mar 1; ann 1 and cyd 2 on Mar 15; bob 1 and cyd 3 at 3.0 on Mar 28 (bob's line
# arrived late, with the Mar 30 batch); ann 5 less 1.0 on Mar 29. bread: bob 1 on Mar 29.
SALES = [
    ("o1", "ann", "milk", 2, 2.0, 0.0, D(1)),
    ("o2", "ann", "milk", 1, 2.0, 0.0, D(15)),
    ("o3", "cyd", "milk", 2, 2.0, 0.0, D(15)),
    ("o4", "bob", "milk", 1, 3.0, 0.0, D(28), D(30)),
    ("o5", "cyd", "milk", 3, 3.0, 0.0, D(28)),
    ("o6", "ann", "milk", 5, 2.0, 1.0, D(29)),
    ("o7", "bob", "bread", 1, 2.0, 0.0, D(29)),
]


def test_item_sales_lags_windows_prices_and_repurchase_cycle(spark):
    rows = rows_by_key(compute_view(item_sales_v1, joined(spark, SALES), D(29), D(29)), "item_id")
    milk = rows["milk"]
    assert milk["units_1d"] == 5
    assert (milk["units_lag_1d"], milk["units_lag_7d"], milk["units_lag_14d"], milk["units_lag_28d"]) == (4, 0, 3, 2)
    assert (milk["units_7d"], milk["units_28d"]) == (9, 12)  # Mar 23..29; Mar 2..29 (Mar 1 has aged out)
    assert milk["revenue_7d"] == pytest.approx(12.0 + 9.0)
    # List value of 7 days: 4 x 3.0 + 5 x 2.0 = 22 over 9 units; 1.0 discount of 22.
    assert milk["avg_unit_price_7d"] == pytest.approx(22 / 9)
    assert milk["discount_depth_7d"] == pytest.approx(1 / 22)
    assert milk["days_with_sales_28d"] == 3  # Mar 15, 28, 29
    # ann: days 28, 14, 0 back (span 28, 2 gaps); cyd: 14 and 1 (span 13, 1 gap); bob once.
    assert milk["repurchase_cycle_days_90d"] == pytest.approx((28 + 13) / 3)
    # bob's Mar 28 line came with the Mar 30 batch: milk's Mar 29 row is known only on Mar 31.
    assert milk["available_at"] == datetime(2026, 3, 31)
    bread = rows["bread"]
    assert (bread["units_1d"], bread["units_lag_1d"], bread["repurchase_cycle_days_90d"]) == (1, 0, None)
    assert bread["available_at"] == datetime(2026, 3, 30)


def test_category_sales_are_the_same_features_per_leaf_category(spark):
    rows = rows_by_key(compute_view(category_sales_v1, joined(spark, SALES), D(29), D(29)), "category")
    assert (rows["dairy"]["units_lag_14d"], rows["dairy"]["units_28d"]) == (3, 12)
    assert rows["dairy"]["repurchase_cycle_days_90d"] == pytest.approx(41 / 3)
    assert (rows["bakery"]["units_1d"], rows["bakery"]["revenue_7d"]) == (1, 2.0)


# milk: on display in store s1 Mar 5..10 (cut 0.3); display and mailer everywhere Mar 14..16 (0.5);
# display in s2 Mar 15..20, planned late: ingested Mar 11. bread: mailer Mar 30..Apr 2.
PROMOTIONS = [
    ("milk", "s1", D(5), D(10), True, False, 0.3, D(1)),
    ("milk", None, D(14), D(16), True, True, 0.5, D(2)),
    ("milk", "s2", D(15), D(20), True, False, 0.2, D(11)),
    ("bread", None, D(30), D(2, month=4), False, True, 0.0, D(1)),
]


def test_item_promotions_today_and_known_in_advance(spark):
    rows = rows_by_key(
        compute_view(item_promotions_v2, promotions(spark, PROMOTIONS), D(10), D(11)), "item_id", "feature_date"
    )
    mar10 = rows[("milk", D(10))]
    assert (mar10["on_display_today"], mar10["on_mailer_today"], mar10["price_cut_today"]) == (1, 0, 0.3)
    assert mar10["days_since_last_promotion"] == 0
    # Known on Mar 10: display Mar 14, 15, 16 ahead; the s2 plan (ingested Mar 11) is not, so 3 in 14 days too.
    assert (mar10["display_days_next_7d"], mar10["display_days_next_14d"], mar10["display_days_next_28d"]) == (3, 3, 3)
    assert mar10["mailer_days_next_7d"] == 3
    assert mar10["available_at"] == datetime(2026, 3, 11)
    mar11 = rows[("milk", D(11))]
    assert (mar11["on_display_today"], mar11["price_cut_today"], mar11["days_since_last_promotion"]) == (0, 0.0, 1)
    # Now the s2 plan is known: display days Mar 14..18 in the next 7 (12..18), Mar 14..20 in the next 14.
    assert (mar11["display_days_next_7d"], mar11["display_days_next_14d"]) == (5, 7)
    assert mar11["available_at"] == datetime(2026, 3, 12)
    bread = rows[("bread", D(10))]
    # Mar 30..Apr 2 is 20..23 days ahead: only the 28-day horizon sees its 4 mailer days.
    assert (bread["mailer_days_next_7d"], bread["mailer_days_next_14d"], bread["mailer_days_next_28d"]) == (0, 0, 4)
    assert bread["days_since_last_promotion"] is None and bread["on_mailer_today"] == 0


def promotions_by_definition(rows, start, end):
    """``item_promotions``' rows for ``start..end`` straight from its definition, one promoted day at
    a time: at the end of day d a promotion counts when it was ingested by d, and its days within 89
    days before d and 28 after make the item's row."""
    out = {}
    items = sorted({r[0] for r in rows})
    for day in (start + timedelta(days=k) for k in range((end - start).days + 1)):
        for item in items:
            seen = [
                (first + timedelta(days=k), show, mail, cut)
                for it, _, first, last, show, mail, cut, known in rows
                if it == item and known <= day
                for k in range((last - first).days + 1)
                if -PROMOTION_LEAD <= (day - (first + timedelta(days=k))).days < PROMOTION_DAYS
            ]
            if not seen:
                continue
            today = [s for s in seen if s[0] == day]
            past = [(day - s[0]).days for s in seen if s[0] <= day]

            def ahead(flag, w, seen=seen, day=day):
                return len({s[0] for s in seen if s[flag] and 1 <= (s[0] - day).days <= w})

            out[(item, day)] = {
                "on_display_today": int(any(s[1] for s in today)),
                "on_mailer_today": int(any(s[2] for s in today)),
                "price_cut_today": max([s[3] for s in today if s[3] is not None], default=0.0),
                "days_since_last_promotion": min(past, default=None),
                **{f"display_days_next_{w}d": ahead(1, w) for w in AHEAD},
                **{f"mailer_days_next_{w}d": ahead(2, w) for w in AHEAD},
                "available_at": datetime.combine(day + timedelta(days=1), datetime.min.time()),
            }
    return out


def test_a_promoted_day_followed_by_one_planned_later_still_counts_until_that_plan_is_known(spark):
    # Milk is promoted Mar 1..3 (known Feb 20) and Mar 4 (a plan that arrived only on Mar 6).
    rows = [
        ("milk", None, D(1), D(3), True, False, 0.1, D(20, month=2)),
        ("milk", None, D(4), D(4), True, False, 0.1, D(6)),
    ]
    computed = rows_by_key(compute_view(item_promotions_v2, promotions(spark, rows), D(5), D(6)), "feature_date")
    # Mar 5: Mar 4 is not known yet, so the last promotion was Mar 3; Mar 6: Mar 4 is.
    assert computed[D(5)]["days_since_last_promotion"] == 2
    assert computed[D(6)]["days_since_last_promotion"] == 2


BASE = D(1, month=1)
promotion_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from([None, "s1", "s2"]),
        # the first day, days after BASE: the output days are 100..108; most spans near them
        st.one_of(st.integers(0, 150), st.integers(90, 112)),
        st.integers(-1, 12),  # length - 1 (-1: an empty span, ignored)
        st.sampled_from([True, False, None]),
        st.sampled_from([True, False, None]),
        st.sampled_from([None, 0.0, 0.2, 0.5]),
        st.integers(-40, 15),  # ingested this many days after the first day
    ),
    max_size=14,
).map(
    lambda raw: [
        (
            item,
            store,
            BASE + timedelta(days=first),
            BASE + timedelta(days=first + length),
            show,
            mail,
            cut,
            BASE + timedelta(days=first + known),
        )
        for item, store, first, length, show, mail, cut, known in raw
    ]
)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(promotion_rows)
def test_item_promotions_match_their_definition_on_random_plans(spark, rows):
    # Overlapping spans, stores, amendments known before and after the promoted days, and runs of
    # consecutive days (whose older days stop fanning out where a newer one takes over).
    start, end = BASE + timedelta(days=100), BASE + timedelta(days=108)
    frame = promotions(spark, rows)
    computed = {
        k: {c: r[c] for c in r.asDict() if c not in ("item_id", "feature_date")}
        for k, r in rows_by_key(compute_view(item_promotions_v2, frame, start, end), "item_id", "feature_date").items()
    }
    assert computed == promotions_by_definition(rows, start, end)


def _input(spark, view: FeatureView):
    if view.source == PROMOTIONS_SOURCE:
        return promotions(spark, PROMOTIONS)
    return joined(spark, BASKETS)


NON_EVENT_VIEWS = sorted(name for name, view in REGISTRY.items() if view.source != EVENTS_SOURCE)


@pytest.mark.parametrize("name", NON_EVENT_VIEWS)
def test_every_order_and_promotion_view_computes_exactly_the_columns_it_declares(spark, name):
    # The transform itself (compute_view would select the declared columns and hide a mismatch).
    view = REGISTRY[name]
    computed = view.transform(_input(spark, view), D(10), D(10)).schema
    declared = [c.split(" ", 1) for c in view.schema.split(", ")]
    assert [(f.name, f.dataType.simpleString()) for f in computed] == [(n, t) for n, t in declared]


def test_the_new_views_read_their_sources_and_keep_lookback_within_180_days():
    assert len(NON_EVENT_VIEWS) == 6
    assert {REGISTRY[n].source for n in NON_EVENT_VIEWS} == {ORDER_LINES_SOURCE, PROMOTIONS_SOURCE}
    assert all(REGISTRY[n].lookback_days < 180 for n in NON_EVENT_VIEWS)
    # source and lead_days are recorded only where they differ from the defaults (older views keep
    # their definitions, and fingerprints, unchanged).
    assert customer_orders_v1.definition()["source"] == ORDER_LINES_SOURCE
    assert item_promotions_v2.definition()["lead_days"] == 28
    events_view = REGISTRY["user_activity_v1"]
    assert "source" not in events_view.definition() and "lead_days" not in events_view.definition()
    # The partition materialisation reads each source by is the declared one.
    for source in materialize.SILVER_SOURCES.values():
        if source.table in tables.DECLARED:
            assert tables.declared(source.table).partition == source.day


def test_an_unknown_source_is_a_config_error():
    from dataclasses import replace

    from lakecart.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown source 'silver.clicks'"):
        replace(customer_orders_v1, source="silver.clicks")


# --- materialisation on a lake that has order lines, a catalogue and promotions, but no clickstream --

ORDER_VIEWS = [n for n in NON_EVENT_VIEWS if REGISTRY[n].source == ORDER_LINES_SOURCE]


def _write(spark, settings, table, frame, partition=None):
    writer = frame.write.format("delta").mode("append")
    (writer.partitionBy(partition) if partition else writer).save(tables.table_path(table, settings))


def _order_lake(spark, settings):
    """ann buys milk on Mar 1 and Mar 3, bob soap on Mar 2; milk is on display Mar 2..4."""
    rows = [
        ("o1", "ann", "milk", 1, 1.5, 0.0, D(1)),
        ("o2", "bob", "soap", 2, 4.0, 0.0, D(2)),
        ("o3", "ann", "milk", 3, 1.5, 0.0, D(3)),
    ]
    lines = spark.createDataFrame(order_lines(rows), ORDER_COLUMNS)
    _write(spark, settings, tables.SILVER_ORDER_LINES, lines, "order_date")
    catalogue = [(item, category, levels, brand) for item, (category, levels, brand) in CATALOGUE.items()]
    _write(
        spark, settings, tables.SILVER_ITEMS, spark.createDataFrame(catalogue, f"item_id string, {CATALOGUE_COLUMNS}")
    )
    promos = promotions(spark, [("milk", None, D(2), D(4), True, False, 0.1, D(1))])
    _write(spark, settings, PROMOTIONS_SOURCE, promos, "start_date")
    feature_store.apply(spark, settings)


def test_a_lake_without_clickstream_materialises_its_order_and_promotion_views(spark, settings, caplog):
    _order_lake(spark, settings)
    reports = run_materialize(spark, settings, D(1), D(3))
    assert all(reports[n].written_days == ["2026-03-01", "2026-03-02", "2026-03-03"] for n in NON_EVENT_VIEWS)
    # No clickstream: the clickstream views are computed from the orders (features.sources), views zero.
    event_views = sorted(n for n, v in REGISTRY.items() if v.source == EVENTS_SOURCE)
    assert all(reports[n].written_days == ["2026-03-01", "2026-03-02", "2026-03-03"] for n in event_views)

    def read(name):
        view = REGISTRY[name]
        frame = spark.read.format("delta").load(feature_store.view_path(view, settings))
        return rows_by_key(frame, *view.entity.keys, "feature_date")

    # Categories come from silver.items: ann's spend is all dairy (food department).
    ann = read("customer_orders_v1")[("ann", D(3))]
    assert (ann["orders_30d"], ann["units_30d"], ann["mean_days_between_orders_180d"]) == (2, 4, 2.0)
    assert ann["top_department_spend_share_180d"] == 1.0
    activity = read("user_activity_v2")[("ann", D(3))]
    assert (activity["purchases_7d"], activity["views_7d"], activity["days_since_purchase"]) == (2, 0, 0)
    assert read("category_sales_v1")[("hygiene", D(3))]["units_lag_1d"] == 2
    milk = read("item_promotions_v2")
    assert milk[("milk", D(1))]["display_days_next_7d"] == 3 and milk[("milk", D(3))]["on_display_today"] == 1

    # Incremental: nothing changed, nothing is recomputed.
    again = run_materialize(spark, settings, D(1), D(3), ORDER_VIEWS)
    assert all(again[n].written_days == [] and len(again[n].skipped_days) == 3 for n in ORDER_VIEWS)
    # A day without order lines is refused for the order views (a day without a promotion is not).
    with pytest.raises(materialize.NoSilverInput, match=r"2026-03-04: no rows in silver\.order_lines;"):
        run_materialize(spark, settings, D(3), D(4))
    assert run_materialize(spark, settings, D(3), D(4), ["item_promotions_v2"])["item_promotions_v2"].written_days == [
        "2026-03-04"
    ]


def test_a_backfill_for_training_gives_history_only_to_the_views_training_sets_join(spark, settings):
    _order_lake(spark, settings)
    three_days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    reports = run_materialize(spark, settings, D(1), D(3), history="training")
    # One run over both groups of views (side by side), which records what it wrote in one commit.
    assert DeltaTable(tables.table_path(tables.FEATURE_MATERIALIZATIONS, settings)).version() == 0
    # customer_orders_v1 is joined by the churn set: every day. customer_item_repeat_v1 is read by
    # no training set (as of a run's date only): the end day.
    assert reports["customer_orders_v1"].written_days == three_days
    assert reports["customer_item_repeat_v1"].written_days == ["2026-03-03"]
    assert reports["customer_category_share_v1"].written_days == ["2026-03-03"]
    assert list(reports) == [name for name in REGISTRY if name in reports]  # the registry's order
    # A later run over every view fills the days left out and recomputes nothing else.
    again = run_materialize(spark, settings, D(1), D(3), history="all")
    assert again["customer_item_repeat_v1"].written_days == ["2026-03-01", "2026-03-02"]
    assert again["customer_orders_v1"].written_days == []
    with pytest.raises(ValueError, match="unknown history 'some'"):
        run_materialize(spark, settings, D(1), D(3), history="some")

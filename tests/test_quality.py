"""The GX runner (lakecart/quality.py)."""

from __future__ import annotations

import pytest

from lakecart.quality import validate_dataframe


def _suite() -> list:
    import great_expectations.expectations as gxe

    # Enough metrics for GX to draw its "Calculating Metrics" progress bar.
    return (
        [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("a", "b")]
        + [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=10) for c in ("a", "b")]
        + [
            gxe.ExpectColumnValuesToBeUnique(column="a"),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
        ]
    )


@pytest.mark.parametrize(("disable", "shown"), [("1", False), (None, True)])
def test_progress_bars_follow_tqdm_disable(spark, tmp_path, monkeypatch, capfd, disable, shown):
    """GX hands tqdm an explicit disable=False, so TQDM_DISABLE alone (what the CLI sets unless -v)
    left hundreds of bar lines in every DAG task's log."""
    if disable is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", disable)
    frame = spark.createDataFrame([(1, 2), (3, 4), (5, 6)], "a long, b long")
    outcome = validate_dataframe(frame, "t.bars", _suite(), tmp_path / "gx")
    assert outcome.success and outcome.evaluated == 6
    assert ("Calculating Metrics" in capfd.readouterr().err) is shown

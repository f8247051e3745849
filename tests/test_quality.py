"""The GX runner (lakecart/quality.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

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


class _Fetched(HTMLParser):
    """Every URL a browser would fetch to show the page (not the links a reader may follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            if name == "href" and tag == "a":
                self.links.append(value)
            elif name in ("src", "href", "srcset", "data", "poster", "background"):
                self.fetched.append(value)

    def handle_data(self, data: str) -> None:
        self.fetched += re.findall(r"url\(([^)]*)\)|@import\s+['\"]?([^'\";]+)", data)


def _offline_links(page: Path) -> list[str]:
    """The page's own links (checked to exist by the caller); fails on anything fetched from a network."""
    parser = _Fetched()
    parser.feed(page.read_text())
    assert not parser.fetched, f"{page} fetches {parser.fetched}"
    assert not [u for u in parser.links if "://" in u], f"{page} links out: {parser.links}"
    return parser.links


def test_one_offline_site_lists_every_validated_table(spark, settings, capfd):
    """Two tables validated into <reports>/gx/<table>, one passing and one failing: the one index
    lists both with their verdicts and the failure, each page exists, and nothing is fetched."""
    from lakecart import cli

    reports = Path(settings.lake.reports)
    frame = spark.createDataFrame([(1, 2), (3, 4), (5, None)], "a long, b long")
    good = validate_dataframe(frame, "t.good", _suite()[:1], reports / "gx" / "t.good")
    # b is null on one row of 3: 1 unexpected, 33.33%.
    bad = validate_dataframe(frame, "t.bad", _suite()[:2], reports / "gx" / "t.bad")
    assert good.success and not bad.success
    assert bad.failures == ["expect_column_values_to_not_be_null(column=b) -> 1 unexpected (33.33%), e.g. [None]"]
    site = reports / "data_docs"
    assert bad.docs == f"{reports}/data_docs/index.html"
    assert not list(reports.glob("gx/*/gx/**/*.html"))  # GX's CDN-bound sites (4 MB each) are gone

    index = (site / "index.html").read_text()
    rows = re.findall(r'<tr><td><a href="([^"]+)">([^<]+)</a></td><td>[^<]*</td><td><span class="(\w+)"', index)
    assert rows == [("tables/t.bad.html", "t.bad", "fail"), ("tables/t.good.html", "t.good", "pass")]
    assert "expect_column_values_to_not_be_null(column=b) -&gt; 1 unexpected" in index
    assert "1 failing in their latest validation: t.bad" in index
    for page in (site / "index.html", site / "tables" / "t.good.html", site / "tables" / "t.bad.html"):
        for link in _offline_links(page):
            assert (page.parent / link).is_file(), f"{page}: {link} is broken"
    bad_page = (site / "tables" / "t.bad.html").read_text()
    # The bad table ran twice (BOOLEAN_ONLY, then SUMMARY for the details): both runs are listed.
    assert "Recent runs (2 of 2, newest first)" in bad_page and "1/2 expectations passed" in bad_page

    # Rebuilt from the stored results alone by `lakecart docs build`, the site is the same but for
    # the time it was generated.
    before = {p.name: re.sub(r"Generated [^<]*", "", p.read_text()) for p in site.rglob("*.html")}
    shutil.rmtree(site)
    capfd.readouterr()
    assert cli.main(["docs", "build", "--json"]) == 0
    summary = json.loads(capfd.readouterr().out)
    assert summary["index"] == f"{reports}/data_docs/index.html"
    assert {t: row["success"] for t, row in summary["tables"].items()} == {"t.bad": False, "t.good": True}
    assert {p.name: re.sub(r"Generated [^<]*", "", p.read_text()) for p in site.rglob("*.html")} == before


def test_a_project_outside_the_reports_layout_writes_no_site(spark, tmp_path):
    frame = spark.createDataFrame([(1, 2)], "a long, b long")
    outcome = validate_dataframe(frame, "t.alone", _suite()[:1], tmp_path / "somewhere")
    assert outcome.success and outcome.docs == "" and "Data Docs" not in outcome.summary()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somewhere"]


def test_gx_is_imported_by_the_background_thread():
    """The validate command starts GX's import before the JVM: the thread itself must import the
    suites' module (a fresh interpreter: this one has GX already)."""
    code = (
        "import sys\n"
        "from lakecart.quality import import_in_background\n"
        "assert 'great_expectations' not in sys.modules\n"
        "import_in_background().join(timeout=120)\n"
        "print('great_expectations.expectations' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True"]

"""Great Expectations (GX Core 1.x) runner, and the lake's one Data Docs site.

Each validated table gets its own file-mode GX project under ``<reports>/gx/<table>``, so that tasks
validating different tables never write the same files; GX keeps every run's result there
(``gx/uncommitted/validations/<suite>/__none__/<run time>/<batch>.json``). GX works with local file
APIs: on a bucket lake it runs in the project's local working copy (``lake.local_dir``), whose new
files are then copied to the bucket.

Data Docs: GX's own sites are one per project and load their CSS and scripts from CDNs (blank pages
offline), so none is written. :func:`build_data_docs` renders one static site from the stored
results instead, plain HTML with its style inline and nothing to fetch: ``<reports>/data_docs/
index.html`` (every table's latest validation, pass or fail, its failures) and ``tables/<table>.html``
(each expectation of the latest run, and the recent runs). A validation refreshes it (its table's
page and the index); ``lakecart docs build`` rebuilds all of it.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lakecart import storage
from lakecart.errors import LakecartError

log = logging.getLogger(__name__)

GX_FOLDER = "gx"  # <reports>/gx/<table>: one GX project per validated table
DOCS_FOLDER = "data_docs"  # <reports>/data_docs: the site
RESULTS = "gx/uncommitted/validations"  # in a project: GX's stored validation results
HISTORY = 20  # runs listed on a table's page


def import_in_background() -> threading.Thread:
    """Start importing GX (about 4-5 s of Python on these machines) in a daemon thread, so that a
    command about to validate pays it while the JVM starts and its first Spark job runs, which wait
    on the JVM (the GIL is free). A later ``import great_expectations`` waits for this one to finish
    (Python's import lock), never imports twice; an import error surfaces there, as it would have."""

    def load() -> None:
        try:
            import great_expectations.expectations  # noqa: F401  (the suites' module; imports the core)
        except Exception:  # noqa: BLE001 (the validating code's own import reports it)
            log.debug("importing great_expectations in the background failed", exc_info=True)

    thread = threading.Thread(target=load, name="import-gx", daemon=True)
    thread.start()
    return thread


class ValidationFailed(LakecartError, RuntimeError):
    """A suite failed: the data must not be published or used."""


@dataclass
class ValidationOutcome:
    table: str
    success: bool
    evaluated: int
    failures: list[str] = field(default_factory=list)
    docs: str = ""

    def summary(self) -> str:
        head = f"{self.table}: {self.evaluated - len(self.failures)}/{self.evaluated} expectations passed"
        docs = [f"  Data Docs: {self.docs}"] if self.docs else []
        return "\n".join([head, *(f"  FAILED {f}" for f in self.failures), *docs])


def _arguments(result: dict) -> str:
    kwargs = {k: v for k, v in result["expectation_config"]["kwargs"].items() if k != "batch_id"}
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())


def _observed(result: dict) -> str:
    observed = result.get("result") or {}
    if "unexpected_count" in observed:
        detail = f"{observed.get('unexpected_count')} unexpected ({observed.get('unexpected_percent') or 0:.2f}%)"
        sample = observed.get("partial_unexpected_list") or []
        return detail + (f", e.g. {sample[:3]}" if sample else "")
    if "observed_value" in observed:
        return f"observed {observed['observed_value']}"
    return ""


def _describe(result: dict) -> str:
    """One expectation's result (GX's JSON form) on one line: type, arguments, what was observed."""
    observed = _observed(result)
    return f"{result['expectation_config']['type']}({_arguments(result)})" + (f" -> {observed}" if observed else "")


def _working_dir(project: str) -> Path:
    """Where GX runs for the project at ``project``: the folder itself on local disk, else a fresh
    local working copy (under ``lake.local_dir`` of the configured lake): the history stays in the
    bucket, and what an earlier lake left in that folder cannot reach this one."""
    if not storage.is_object_store(project):
        return storage.local_path(project)
    from lakecart.config import get_settings

    local = get_settings().lake.work_path(project)
    shutil.rmtree(local, ignore_errors=True)
    return local


def reports_of(project: str) -> str | None:
    """The reports folder of a project laid out as ``<reports>/gx/<table>``; None for any other folder."""
    parts = project.rstrip("/").rsplit("/", 2)
    return parts[0] if len(parts) == 3 and parts[1] == GX_FOLDER else None


def validate_dataframe(df, table: str, expectations: list, project_dir: str | Path) -> ValidationOutcome:
    """Run ``expectations`` on ``df`` through a GX checkpoint, keep the result in the GX project at
    ``project_dir`` (a local folder or a lake location) and, for a project laid out as
    ``<reports>/gx/<table>``, refresh the Data Docs page of this table and the index.

    The gate runs at GX's ``BOOLEAN_ONLY`` result format: pass or fail per expectation, the fewest
    Spark jobs. Only when something fails does it run again at ``SUMMARY``, so the error and the Data
    Docs show unexpected counts and sample values for the failures (a slow path for the rare bad batch).
    """
    import great_expectations as gx

    uri = str(project_dir)
    project = _working_dir(uri)
    project.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(project))
    if os.environ.get("TQDM_DISABLE"):
        # GX passes tqdm an explicit ``disable=False``, which TQDM_DISABLE cannot override: its own
        # setting turns the "Calculating Metrics" bars off (hundreds of lines in a DAG's task logs).
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    name = table.replace(".", "_")
    # persist=False: GX would cache every frame it is given and never drop it; callers cache the frames
    # worth caching (a table's rows) and drop them after.
    source = context.data_sources.add_or_update_spark(name=f"{name}_source", persist=False)
    asset = source.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe(f"{name}_batch")
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=f"{name}_suite", expectations=expectations))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[definition],
            actions=[],  # the result is stored either way; the Data Docs are ours (module docstring)
            result_format={"result_format": "BOOLEAN_ONLY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": df})
    if not result.success:
        checkpoint.result_format = {"result_format": "SUMMARY"}
        checkpoint.save()
        result = checkpoint.run(batch_parameters={"dataframe": df})
    results = [r.to_json_dict() for run in result.run_results.values() for r in run.results]
    failures = [_describe(r) for r in results if not r["success"]]
    if storage.is_object_store(uri):
        storage.sync_tree(str(project), uri)  # what this run added or changed
    reports = reports_of(uri)
    docs = ""
    if reports is not None:
        project_name = uri.rstrip("/").rsplit("/", 1)[-1]
        build_data_docs(reports, only=[project_name])
        docs = f"{reports}/{DOCS_FOLDER}/index.html"
    outcome = ValidationOutcome(table, bool(result.success), len(results), failures, docs)
    # One suite of a gate's several: the gate's caller shows the combined outcome once.
    log.debug(outcome.summary())
    return outcome


# --- Data Docs ----------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One stored validation result of a project."""

    time: str  # ISO, UTC
    success: bool
    evaluated: int
    passed: int
    results: list[dict]

    @classmethod
    def parse(cls, text: str) -> _Run:
        doc = json.loads(text)
        stats = doc.get("statistics") or {}
        results = doc.get("results") or []
        when = (doc.get("meta") or {}).get("validation_time")
        return cls(
            time=f"{datetime.fromisoformat(when).astimezone(UTC):%Y-%m-%d %H:%M:%S}" if when else "",
            success=bool(doc.get("success")),
            evaluated=int(stats.get("evaluated_expectations", len(results))),
            passed=int(stats.get("successful_expectations", sum(bool(r.get("success")) for r in results))),
            results=results,
        )


def page_name(project: str) -> str:
    """A table's page in the site, relative to the site's folder."""
    return f"tables/{re.sub(r'[^A-Za-z0-9._-]', '_', project)}.html"


def _result_files(filesystem, project_path: str) -> list[str]:
    """The project's stored results, oldest first (their folders are named by run time)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(f"{project_path}/{RESULTS}", recursive=True, allow_not_found=True)
    files = [i.path for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
    files = [f for f in files if f.endswith(".json")]
    return sorted(files, key=lambda f: (f.rsplit("/", 2)[-2], f))


def _read(filesystem, path: str) -> _Run | None:
    """The stored result at ``path``; None while GX is still writing it (another task's validation)."""
    with filesystem.open_input_stream(path) as stream:
        text = stream.read().decode()
    try:
        return _Run.parse(text)
    except ValueError:
        return None


def build_data_docs(reports: str, only: list[str] | None = None) -> dict:
    """Render the Data Docs site of the GX projects under ``<reports>/gx`` (local or in a bucket) into
    ``<reports>/data_docs``: the index, and the page of each project in ``only`` (every project when
    None). Returns ``{"index": uri, "tables": {project: {"success", "validated_at", "page"}}}``."""
    import pyarrow.fs as pafs

    filesystem, base = storage.arrow_filesystem(f"{reports}/{GX_FOLDER}")
    site = f"{reports}/{DOCS_FOLDER}"
    selector = pafs.FileSelector(base, allow_not_found=True)
    projects = sorted(i.base_name for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.Directory)
    latest: dict[str, _Run] = {}
    for project in projects:
        files = _result_files(filesystem, f"{base}/{project}")
        wanted = files[-HISTORY:] if only is None or project in only else files[-2:]
        runs = [run for run in (_read(filesystem, f) for f in wanted) if run is not None]
        if not runs:
            continue  # a project that never finished a run
        latest[project] = runs[-1]
        if only is None or project in only:
            storage.write_text(f"{site}/{page_name(project)}", _table_page(project, runs, len(files)))
    storage.write_text(f"{site}/index.html", _index_page(latest))
    log.info("Data Docs: %s/index.html (%d tables)", site, len(latest))
    return {
        "index": f"{site}/index.html",
        "tables": {
            p: {"success": r.success, "validated_at": r.time, "page": f"{site}/{page_name(p)}"}
            for p, r in latest.items()
        },
    }


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1b1f23; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.35rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
code { font-size: 0.85rem; word-break: break-word; } .muted { color: #57606a; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _verdict(success: bool) -> str:
    return '<span class="pass">PASS</span>' if success else '<span class="fail">FAIL</span>'


def _generated() -> str:
    return f'<p class="muted">Generated {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by lakecart.</p>'


def _index_page(latest: dict[str, _Run]) -> str:
    failing = sorted(p for p, r in latest.items() if not r.success)
    rows = []
    for project, run in sorted(latest.items()):
        failures = [_describe(r) for r in run.results if not r.get("success")]
        listed = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in failures[:5])
        more = f"<li>and {len(failures) - 5} more</li>" if len(failures) > 5 else ""
        rows.append(
            f'<tr><td><a href="{html.escape(page_name(project))}">{html.escape(project)}</a></td>'
            f"<td>{html.escape(run.time)}</td><td>{_verdict(run.success)}</td>"
            f"<td>{run.passed}/{run.evaluated}</td><td>{f'<ul>{listed}{more}</ul>' if failures else ''}</td></tr>"
        )
    head = (
        f"<h1>Data Docs</h1>\n<p>{len(latest)} validated tables; "
        f"{len(failing)} failing in their latest validation{': ' + ', '.join(failing) if failing else ''}.</p>\n"
    )
    table = (
        "<table>\n<tr><th>Table</th><th>Latest validation (UTC)</th><th>Result</th>"
        "<th>Expectations passed</th><th>Failures</th></tr>\n" + "\n".join(rows) + "\n</table>"
    )
    return _page("lakecart Data Docs", head + table + "\n" + _generated())


def _table_page(project: str, runs: list[_Run], total: int) -> str:
    run = runs[-1]
    rows = "\n".join(
        f"<tr><td><code>{html.escape(r['expectation_config']['type'])}</code></td>"
        f"<td><code>{html.escape(_arguments(r))}</code></td><td>{_verdict(bool(r.get('success')))}</td>"
        f"<td>{html.escape(_observed(r))}</td></tr>"
        for r in sorted(run.results, key=lambda r: (bool(r.get("success")), r["expectation_config"]["type"]))
    )
    history = "\n".join(
        f"<tr><td>{html.escape(r.time)}</td><td>{_verdict(r.success)}</td><td>{r.passed}/{r.evaluated}</td></tr>"
        for r in reversed(runs)
    )
    body = (
        f'<p><a href="../index.html">All tables</a></p>\n<h1>{html.escape(project)}</h1>\n'
        f"<p>Latest validation {html.escape(run.time)} UTC: {_verdict(run.success)}, "
        f"{run.passed}/{run.evaluated} expectations passed.</p>\n"
        "<h2>Expectations (latest run)</h2>\n<table>\n<tr><th>Expectation</th><th>Arguments</th><th>Result</th>"
        f"<th>Observed</th></tr>\n{rows}\n</table>\n"
        f"<h2>Recent runs ({len(runs)} of {total}, newest first)</h2>\n<table>\n"
        f"<tr><th>Validated (UTC)</th><th>Result</th><th>Expectations passed</th></tr>\n{history}\n</table>\n"
    )
    return _page(f"{project}: Data Docs", body + _generated())

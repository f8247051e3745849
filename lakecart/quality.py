"""Great Expectations (GX Core 1.x) runner: validate a Spark DataFrame against a suite, write Data Docs.

Each table gets its own file-mode GX project under ``<lake root>/reports/gx/<table>`` so that tasks
validating different tables never write the same files. Data Docs: ``.../uncommitted/data_docs/local_site/index.html``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from lakecart.errors import LakecartError

log = logging.getLogger(__name__)


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
        return "\n".join([head, *(f"  FAILED {f}" for f in self.failures), f"  Data Docs: {self.docs}"])


def _describe(result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
    observed = result.result or {}
    detail = ""
    if "unexpected_count" in observed:
        detail = f" -> {observed.get('unexpected_count')} unexpected ({observed.get('unexpected_percent', 0):.2f}%)"
        sample = observed.get("partial_unexpected_list") or []
        if sample:
            detail += f", e.g. {sample[:3]}"
    elif "observed_value" in observed:
        detail = f" -> observed {observed['observed_value']}"
    return f"{config.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())}){detail}"


def validate_dataframe(df, table: str, expectations: list, project_dir: str | Path) -> ValidationOutcome:
    """Run ``expectations`` on ``df`` through a GX checkpoint and write the Data Docs HTML.

    The gate runs at GX's ``BOOLEAN_ONLY`` result format: pass or fail per expectation, the fewest
    Spark jobs. Only when something fails does it run again at ``SUMMARY``, so the error and the Data
    Docs show unexpected counts and sample values for the failures (a slow path for the rare bad batch).
    """
    import great_expectations as gx

    project = Path(project_dir)
    project.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(project))
    if os.environ.get("TQDM_DISABLE"):
        # GX passes tqdm an explicit ``disable=False``, which TQDM_DISABLE cannot override: its own
        # setting turns the "Calculating Metrics" bars off (hundreds of lines in a DAG's task logs).
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    name = table.replace(".", "_")
    source = context.data_sources.add_or_update_spark(name=f"{name}_source")
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
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "BOOLEAN_ONLY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": df})
    if not result.success:
        checkpoint.result_format = {"result_format": "SUMMARY"}
        checkpoint.save()
        result = checkpoint.run(batch_parameters={"dataframe": df})
    results = [r for run in result.run_results.values() for r in run.results]
    failures = [_describe(r) for r in results if not r.success]
    docs = project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    outcome = ValidationOutcome(table, bool(result.success), len(results), failures, str(docs))
    log.info(outcome.summary())
    return outcome

"""What is in the lake: tables, row counts, versions; read with delta-rs (no JVM)."""

from __future__ import annotations

import logging
from pathlib import Path

from lakecart.config import Settings, get_settings

log = logging.getLogger(__name__)


def table_overview(settings: Settings | None = None) -> list[dict]:
    """One row per table folder. A table that cannot be read (a run killed during its first commit
    leaves a ``_delta_log`` with no commit) is listed with ``error`` instead of failing the listing."""
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    settings = settings or get_settings()
    root = Path(settings.lake.tables)
    rows = []
    for log_dir in sorted(root.glob("*/*/_delta_log")):
        path = log_dir.parent
        name = f"{path.parent.name}.{path.name}"
        try:
            table = DeltaTable(str(path))
            # Row counts from the log's file statistics: no data file is opened.
            actions = pa.table(table.get_add_actions(flatten=True))
            n = int(pa.compute.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
        except (DeltaError, OSError) as exc:
            problem = _problem(log_dir, exc)
            rows.append({"table": name, "rows": None, "version": None, "path": str(path), "error": problem})
            continue
        rows.append({"table": name, "rows": n, "version": table.version(), "path": str(path)})
    return rows


def _problem(log_dir: Path, exc: Exception) -> str:
    if not any(log_dir.glob("*.json")) and not any(log_dir.glob("*.checkpoint*.parquet")):
        return (
            "no commit in _delta_log (a run was killed during the table's first commit): re-run the job that "
            "writes it, or delete the folder"
        )
    return f"cannot read the table ({' '.join(str(exc).split())[:300]}); re-run the job that writes it"

"""What is in the lake: tables, row counts, versions; read with delta-rs (no JVM)."""

from __future__ import annotations

from pathlib import Path

from lakecart.config import Settings, get_settings


def table_overview(settings: Settings | None = None) -> list[dict]:
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401
    from deltalake import DeltaTable

    settings = settings or get_settings()
    root = Path(settings.lake.tables)
    rows = []
    for log_dir in sorted(root.glob("*/*/_delta_log")):
        path = log_dir.parent
        table = DeltaTable(str(path))
        # Row counts from the log's file statistics: no data file is opened.
        actions = pa.table(table.get_add_actions(flatten=True))
        n = int(pa.compute.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
        rows.append(
            {"table": f"{path.parent.name}.{path.name}", "rows": n, "version": table.version(), "path": str(path)}
        )
    return rows

"""Every notebook in notebooks/ runs top to bottom in the pipeline environment's kernel."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    # A failing cell raises CellExecutionError with the cell's traceback.
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    if path.stem == "feature_store":
        assert "feature values newer than their label: 0" in text
        assert "'identical': True" in text


def test_there_is_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == ["feature_store"]

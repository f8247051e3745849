"""Every notebook in notebooks/ runs top to bottom in the pipeline environment's kernel, and prints
what it is about: the numbers are checked for shape and range, not for values a retrain may move."""

import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
NUMBER = r"(\d+(?:\.\d+)?)"
VERDICT = r"(candidate|champion|baseline)"


def check_feature_store(text: str, images: int) -> None:
    assert "feature values newer than their label: 0" in text
    assert "'identical': True" in text


def check_recommendations(text: str, images: int) -> None:
    recall = dict(
        (name, (float(model), float(baseline)))
        for name, model, baseline in re.findall(rf"recall@10 model vs (\w+): {NUMBER} vs {NUMBER}", text)
    )
    assert set(recall) == {"most_popular", "co_occurrence"}, text
    assert all(0 <= v <= 1 for pair in recall.values() for v in pair), recall
    for model in ("retrieval", "ranking"):
        assert re.search(rf"gate verdict {model}: {VERDICT} - \S", text), text
    reach = {
        name: (float(coverage), float(share))
        for name, coverage, share in re.findall(rf"([\w-]+): coverage {NUMBER}, share to top 10% items {NUMBER}", text)
    }
    assert set(reach) == {"two-tower", "most_popular", "co_occurrence"}, text
    assert all(0 < coverage <= 1 and 0 <= share <= 1 for coverage, share in reach.values()), reach
    # most_popular gives every user the same 10 items of the 40: 10 / 40.
    assert reach["most_popular"][0] == pytest.approx(0.25)
    assert images >= 3  # the run's own bars, the recall@k curve, coverage and popularity bias


def check_churn_demand(text: str, images: int) -> None:
    for model in ("churn", "demand"):
        assert re.search(rf"gate verdict {model}: {VERDICT} - \S", text), text
        assert re.search(rf"{model}: \w+ candidate {NUMBER}, .* -> {VERDICT} \((published|held back)\)", text), text
    churn = re.findall(rf"churn deep vs ([\w ()]+): roc_auc {NUMBER} vs {NUMBER}, pr_auc {NUMBER} vs {NUMBER}", text)
    assert {name for name, *_ in churn} >= {"logistic_regression_rfm", "bg_nbd"}, text
    assert all(0 <= float(v) <= 1 for _, *values in churn for v in values), churn
    gaps = re.findall(rf"calibration gap (.+): {NUMBER}", text)
    assert {"deep", "logistic_regression_rfm", "bg_nbd"} <= {name for name, _ in gaps}, text
    assert all(0 <= float(gap) <= 1 for _, gap in gaps), gaps
    mase = re.findall(
        rf"mase@(\d+)d deep vs seasonal_naive vs moving_average_28d: {NUMBER} vs {NUMBER} vs {NUMBER}", text
    )
    assert [h for h, *_ in mase] == ["1", "7", "14"], text
    assert all(0 < float(v) < 10 for _, *values in mase for v in values), mase
    assert images >= 4  # bars, reliability, MASE by horizon, forecasts against what sold


CHECKS = {
    "feature_store": check_feature_store,
    "recommendations": check_recommendations,
    "churn_demand": check_churn_demand,
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # The kernel inherits this process's environment: importing lakecart.training.plots here (another
    # test, in the same pytest worker) sets MPLBACKEND=Agg, and a kernel with it draws no inline plots.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    # The notebooks make their lakes with tempfile.mkdtemp and leave them for the reader to open:
    # under the test's own folder, not one more lake in /tmp per notebook per run.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    # A failing cell raises CellExecutionError with the cell's traceback.
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    text = "\n".join(output.get("text", "") for output in outputs)
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    CHECKS[path.stem](text, images)
    assert list(tmp_path.glob("lakecart-notebook-*")), "the notebook's lake is not under the test's folder"


def test_there_is_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == ["churn_demand", "feature_store", "recommendations"]


def test_notebooks_are_committed_without_outputs():
    import nbformat

    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        executed = [c for c in notebook.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not executed, f"{path.name}: clear its outputs before committing"

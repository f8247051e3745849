"""lakecart.training.plots: PNG files, and nothing changed in the process that draws them."""

import os

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_are_pngs_and_leave_the_environment_alone(tmp_path, monkeypatch):
    # Runs train in notebooks and in Horovod workers: a backend forced through the environment
    # reached every process started after it (a notebook kernel then drew no inline plots).
    monkeypatch.delenv("MPLBACKEND", raising=False)
    from lakecart.training import plots

    written = [
        plots.training_curves(tmp_path / "loss.png", {"loss": [0.9, 0.5, 0.4]}, "loss"),
        plots.grouped_bars(
            tmp_path / "bars.png", {"model": {"auc": 0.8, "brier": 0.1}, "baseline": {"auc": 0.7}}, "t", "score"
        ),
        plots.reliability_diagram(tmp_path / "rel.png", {"model": {"predicted": [0.1, 0.9], "observed": [0.2, 0.8]}}),
    ]
    assert written == ["loss.png", "bars.png", "rel.png"]
    for name in written:
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert "MPLBACKEND" not in os.environ

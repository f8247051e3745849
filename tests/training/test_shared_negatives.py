"""Retrieval across workers: with shared negatives, two workers' averaged gradient is the one-process
gradient of the same global batch (real ``horovodrun --gloo -np 2``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from lakecart.training.distributed import horovodrun_command


def test_two_workers_with_shared_negatives_compute_the_one_process_gradient(tmp_path):
    out = tmp_path / "gradients.json"
    command = horovodrun_command("tests.training.shared_negatives_worker", [str(out)], processes=2)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["with_shared_negatives"] < 1e-4
    # Without sharing, each worker's softmax sees half the negatives: a different gradient.
    assert result["without"] > 1e-2

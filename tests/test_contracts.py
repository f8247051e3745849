"""The names both environments share (lakecart/contracts.py) agree with the pipeline code."""

from __future__ import annotations

import ast
from pathlib import Path

from lakecart import contracts
from lakecart.jobs.training_set import KINDS
from lakecart.training.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def test_every_model_and_its_training_set_is_named_once():
    assert set(contracts.MODEL_TRAINING_SETS) == set(TASKS)
    for model, kind in contracts.MODEL_TRAINING_SETS.items():
        assert TASKS[model].dataset_kind == kind
        assert kind in KINDS
    assert set(contracts.MODEL_OUTPUT_ASSETS) == set(TASKS)
    for model, upstream in contracts.MODEL_UPSTREAM.items():
        assert model in TASKS and set(upstream) <= set(TASKS)


def test_contracts_import_nothing_but_the_standard_library():
    # The Airflow environment imports this module; it has no Spark, TensorFlow or pandas.
    tree = ast.parse((ROOT / "lakecart" / "contracts.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {"__future__"}, imported

"""The committed ledger of test-window scorings: counts carry on across runs and machines."""

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
spec = importlib.util.spec_from_file_location("scorings_ledger", BENCHMARKS / "scorings_ledger.py")
ledger_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ledger_module)


def test_each_scoring_counts_on_from_the_ledger_and_other_protocols_keep_theirs(tmp_path):
    ledger = tmp_path / "scorings.json"
    ledger.write_text(json.dumps({"baskets": 2, "churn": 1}))
    assert ledger_module.count_scoring("baskets", ledger) == 3
    assert ledger_module.count_scoring("new", ledger) == 1
    assert json.loads(ledger.read_text()) == {"baskets": 3, "churn": 1, "new": 1}
    assert ledger_module.scorings("churn", ledger) == 1 and ledger_module.scorings("never", ledger) == 0


def test_the_committed_ledger_names_the_real_data_protocols():
    counts = json.loads(ledger_module.LEDGER.read_text())
    assert set(counts) >= {"complete_journey_baskets", "complete_journey_churn_demand"}
    assert all(isinstance(n, int) and n >= 1 for n in counts.values())

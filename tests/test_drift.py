import math

import pytest

from lakecart.drift import population_stability_index


def test_identical_distributions_have_zero_psi():
    assert population_stability_index({"a": 10, "b": 30}, {"a": 1, "b": 3}) == 0.0


def test_psi_by_hand():
    # ref 50/50, cur 80/20: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)
    expected = 0.3 * math.log(1.6) + (-0.3) * math.log(0.4)
    assert population_stability_index({"a": 5, "b": 5}, {"a": 8, "b": 2}) == pytest.approx(expected)


def test_a_new_category_counts_as_drift():
    assert population_stability_index({"a": 100}, {"a": 50, "new": 50}) > 0.25

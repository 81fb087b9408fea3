"""Frozen bins, PSI/CSI and traffic lights of riskmodels.ml.stability, against direct implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskmodels.ml.stability import EPSILON, Bins, StabilityCounter, fit_categorical, fit_numeric, light_of, psi


def _direct_psi(expected: list[float], actual: list[float]) -> float:
    # The formula as written in the README, one bin at a time, floors applied, nothing renormalised.
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_psi_equals_the_formula_summed_bin_by_bin(seed):  # noqa: ANN001
    rng = np.random.default_rng(seed)
    expected = rng.dirichlet(np.ones(10)).tolist()
    actual = rng.dirichlet(np.ones(10)).tolist()
    assert psi(expected, actual) == pytest.approx(_direct_psi(expected, actual), abs=1e-12, rel=0)
    assert psi(expected, actual) > 0


def test_an_empty_bin_gives_a_finite_psi_with_its_share_floored_and_not_renormalised():
    expected = [0.5, 0.3, 0.2]
    actual = [0.6, 0.4, 0.0]  # nothing in the last bin
    value = psi(expected, actual)
    assert math.isfinite(value)
    floored = ((0.6 - 0.5) * math.log(0.6 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
               + (1e-4 - 0.2) * math.log(1e-4 / 0.2))
    assert value == pytest.approx(floored, abs=1e-12, rel=0)
    # An empty bin at reference ("other": categories never seen) is floored the same way.
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))


def test_identical_distributions_have_a_psi_of_zero():
    assert psi([0.25, 0.25, 0.5, 0.0], [0.25, 0.25, 0.5, 0.0]) == 0.0


def test_psi_refuses_shares_of_different_bins():
    with pytest.raises(ValueError, match="expected 2 shares, got 3"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_numeric_bins_are_deciles_closed_on_the_right_with_missing_values_a_bin_of_their_own():
    values = np.concatenate([np.arange(1.0, 101.0), [np.nan] * 25])
    bins = fit_numeric(values)
    assert bins.edges == (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)  # values of the data, no interpolation
    assert bins.size == 11 and len(bins.shares) == 11
    assert bins.shares[-1] == pytest.approx(25 / 125)
    assert sum(bins.shares) == pytest.approx(1.0)
    assert bins.labels()[0] == "(-inf, 10]" and bins.labels()[-2] == "(90, inf)" and bins.labels()[-1] == "missing"
    # A value on a cut point belongs to the bin it closes.
    assert bins.count([10, 10.01, None, "not a number"]).tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2]


def test_numeric_bins_collapse_where_quantiles_repeat():
    bins = fit_numeric([1, 1, 1, 1, 2, 2, 3, 4] * 10)
    assert bins.edges == (1.0, 2.0, 3.0)  # no cut at the maximum, none repeated
    assert bins.shares == pytest.approx((0.5, 0.25, 0.125, 0.125, 0.0))  # the last: missing


def test_categorical_bins_send_unseen_categories_to_other_and_missing_values_to_missing():
    bins = fit_categorical(["b", "a", "a", None, "c", float("nan")])
    assert bins.categories == ("a", "b", "c")
    assert bins.labels() == ["a", "b", "c", "other", "missing"]
    assert bins.shares == pytest.approx((2 / 6, 1 / 6, 1 / 6, 0.0, 2 / 6))
    assert bins.count(["a", "z", None, "c", "y"]).tolist() == [1, 0, 1, 2, 1]


def test_bins_survive_their_stored_form():
    for bins in (fit_numeric([0.1, 0.5, 0.7, np.nan, 0.9]), fit_categorical(["x", "y", None])):
        again = Bins.from_dict(bins.to_dict())
        assert again == bins
        assert again.labels() == bins.to_dict()["labels"]


def test_counting_in_chunks_gives_the_same_index_as_counting_at_once():
    rng = np.random.default_rng(7)
    bins = fit_numeric(rng.normal(size=2000))
    shifted = rng.normal(0.5, 1.2, size=3001)
    whole, chunked = StabilityCounter(bins), StabilityCounter(bins)
    whole.add(shifted)
    for start in range(0, len(shifted), 500):
        chunked.add(shifted[start:start + 500])
    assert chunked.counts.tolist() == whole.counts.tolist() and chunked.n == 3001
    result = chunked.result(amber=0.1, red=0.25)
    actual = [c / 3001 for c in whole.counts]
    assert result["value"] == pytest.approx(_direct_psi(list(bins.shares), actual), abs=1e-12, rel=0)
    assert [b["actual"] for b in result["bins"]] == pytest.approx(actual)
    assert result["light"] == light_of(result["value"], 0.1, 0.25)


def test_a_counter_with_no_values_refuses_to_compute_an_index():
    with pytest.raises(ValueError, match="at least one"):
        StabilityCounter(fit_categorical(["a"])).result(amber=0.1, red=0.25)


@pytest.mark.parametrize(("value", "light"), [(0.0, "green"), (0.0999, "green"), (0.10, "amber"), (0.2499, "amber"),
                                              (0.25, "red"), (3.0, "red")])
def test_lights_are_green_below_amber_amber_from_it_and_red_from_red(value, light):  # noqa: ANN001
    assert light_of(value, 0.10, 0.25) == light

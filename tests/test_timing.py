"""LatencyHistogram: quantiles within the stated ~9 % of the exact ones, exact mean and max,
Prometheus-style cumulative counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.timing import LatencyHistogram

WIDTH = 2 ** (1 / 8)  # one bucket: eight per doubling, so at most ~9.05 % wide
PROMETHEUS_BOUNDS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, math.inf]

durations = st.lists(
    st.floats(min_value=1e-6, max_value=100.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=400,
)


def histogram_of(samples) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for seconds in samples:
        histogram.add(seconds)
    return histogram


@settings(max_examples=150, deadline=None)
@given(samples=durations, q=st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_a_quantile_is_the_exact_one_or_at_most_one_bucket_above_it(samples, q):
    histogram = histogram_of(samples)
    # "the duration below which a share q of the calls fell": the order statistic at rank
    # ceil(q * n), which is numpy's inverted_cdf percentile.
    exact = float(np.percentile(samples, 100 * q, method="inverted_cdf"))
    estimate = histogram.quantile(q)
    assert exact * (1 - 1e-9) <= estimate <= exact * WIDTH * (1 + 1e-9)
    assert estimate <= max(samples)


def test_p95_of_a_log_uniform_sample_is_within_nine_percent_of_numpy():
    rng = np.random.default_rng(7)
    samples = np.exp(rng.uniform(math.log(2e-5), math.log(3.0), 20_000))
    histogram = histogram_of(samples)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = np.percentile(samples, 100 * q)  # numpy's default (linear) percentile
        assert histogram.quantile(q) == pytest.approx(exact, rel=0.091)


@settings(max_examples=100, deadline=None)
@given(samples=durations)
def test_mean_count_and_max_are_exact(samples):
    histogram = histogram_of(samples)
    assert histogram.count == len(samples)
    assert histogram.slowest == max(samples)
    assert histogram.mean == pytest.approx(float(np.mean(samples)), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(samples=durations)
def test_cumulative_counts_are_monotone_end_at_the_count_and_bracket_the_exact_counts(samples):
    histogram = histogram_of(samples)
    counts = histogram.cumulative(PROMETHEUS_BOUNDS)
    assert counts == sorted(counts)
    assert counts[-1] == histogram.count == len(samples)
    values = np.array(samples)
    for bound, count in zip(PROMETHEUS_BOUNDS[:-1], counts):
        # Counted: calls whose bucket lies under the bound, so every counted call took at most
        # the bound, and every call at least one bucket under it is counted.
        assert np.sum(values <= bound / WIDTH * (1 - 1e-9)) <= count <= np.sum(values <= bound * (1 + 1e-9))


def test_an_empty_histogram_reports_zeros_and_a_copy_is_independent():
    histogram = LatencyHistogram()
    assert (histogram.count, histogram.mean, histogram.quantile(0.95), histogram.slowest) == (0, 0.0, 0.0, 0.0)
    assert histogram.cumulative([0.001, math.inf]) == [0, 0]
    histogram.add(0.002)
    twin = histogram.copy()
    histogram.add(0.5)
    assert (twin.count, twin.slowest, twin.cumulative([math.inf])) == (1, 0.002, [1])
    assert (histogram.count, histogram.slowest) == (2, 0.5)

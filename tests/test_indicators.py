"""Streaming indicators equal their textbook definitions computed in bulk with pandas."""

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner.indicators import ATR, EMA, MACD, RSI, SMA, Bollinger

prices = st.lists(st.floats(1, 1000, allow_nan=False, allow_infinity=False), min_size=1, max_size=120)


def run(indicator, values):
    return [indicator.update(v) for v in values]


def close(ours, theirs):
    for a, b in zip(ours, theirs):
        if a is None:
            assert pd.isna(b)
        else:
            assert abs(a - b) <= 1e-7 * max(1.0, abs(b))


@settings(max_examples=150, deadline=None)
@given(prices, st.integers(1, 30))
def test_sma_and_ema(values, period):
    series = pd.Series(values)
    close(run(SMA(period), values), series.rolling(period).mean())
    seeded = series.copy()
    seeded[: period - 1] = np.nan
    if len(series) >= period:
        seeded[period - 1] = series[:period].mean()
    close(run(EMA(period), values), seeded.ewm(span=period, adjust=False, ignore_na=True).mean().where(seeded.index >= period - 1))


def wilder(changes: pd.Series, period: int) -> pd.Series:
    out = pd.Series(np.nan, index=changes.index)
    if len(changes) >= period:
        out.iloc[period - 1] = changes.iloc[:period].mean()
        for i in range(period, len(changes)):
            out.iloc[i] = (out.iloc[i - 1] * (period - 1) + changes.iloc[i]) / period
    return out


@settings(max_examples=100, deadline=None)
@given(prices, st.integers(2, 20))
def test_rsi_is_wilders(values, period):
    changes = pd.Series(values).diff().iloc[1:].reset_index(drop=True)
    gain, loss = wilder(changes.clip(lower=0), period), wilder((-changes).clip(lower=0), period)
    expected = [np.nan] + [
        np.nan if pd.isna(g) else (100.0 if l == 0 and g > 0 else 50.0 if l == 0 else 100 - 100 / (1 + g / l))
        for g, l in zip(gain, loss)
    ]
    close(run(RSI(period), values), expected)


@settings(max_examples=100, deadline=None)
@given(prices, st.integers(2, 25))
@example([2.0, 2.00001], 2)  # a sum of squares minus the squared mean lost every digit here
def test_bollinger_position(values, period):
    series = pd.Series(values)
    mean, std = series.rolling(period).mean(), series.rolling(period).std(ddof=0)
    upper, lower = mean + 2 * std, mean - 2 * std
    width = upper - lower
    expected = ((series - lower) / width).where(width > 1e-9, 0.5).where(mean.notna())
    ours = run(Bollinger(period), values)
    for a, b, w in zip(ours, expected, width):
        if a is not None and w > 1e-6:
            assert abs(a - b) <= 1e-6


def test_macd_matches_the_ema_difference():
    values = [100 + 10 * np.sin(i / 7) for i in range(80)]
    macd = MACD(12, 26, 9)
    results = run(macd, values)
    fast, slow = run(EMA(12), values), run(EMA(26), values)
    line = fast[-1] - slow[-1]
    assert abs(macd.line - line) < 1e-9
    assert results[-1] == macd.line - macd.signal
    assert results[33] is not None and results[32] is None  # 26 + 9 - 1 bars to warm up


def test_atr_uses_the_true_range_with_wilders_smoothing():
    atr = ATR(3)
    bars = [(11, 9, 10), (12, 10, 11), (15, 11, 14), (14, 8, 9)]
    values = [atr.update(*bar) for bar in bars]
    # true ranges: 2, 2, 4 (15-11), 6 (14-8); first ATR = (2+2+4)/3; then (8/3*2 + 6)/3
    assert values[:2] == [None, None]
    assert abs(values[2] - 8 / 3) < 1e-12
    assert abs(values[3] - (8 / 3 * 2 + 6) / 3) < 1e-12

"""``make bench-forecast-libraries``: the project's forecast against forecasting
libraries on the same simulated truth and the same error as ``make bench-logistics``.

A fixed-seed sample of the national fleet's containers (``firmware_sim.containers``,
every container's "now" on another hour of the week) is drawn until ``--containers``
of them count for the error (``bench_logistics.measurable``: well-behaved, below the
threshold, the true time to it within 14 days); each method's hours to the threshold
are scored by ``bench_logistics.error_h`` against ``FillHistory.truth_hours``.

Methods:

- **own**: ``server.logistics.forecast`` (category shapes estimated from the simulated
  sample, as production estimates them from the batch it forecasts);
- **naive**: ``forecast.naive_hours``, the last day's rate extrapolated;
- **statsmodels**: Holt-Winters ``ExponentialSmoothing`` with an additive hour-of-week
  season (period 168), no trend, initial states estimated from the whole series;
- **statsforecast**: ``MSTL`` with daily and weekly seasons (24, 168) and ``AutoETS``
  on the remainder's trend.

The libraries model the hourly *increments* over the container's whole history, not
the level since the last emptying: a truck empties a container every few days, so
the level since the last emptying is shorter than one week and no weekly season can be
fitted to it, and the level's saw-tooth would break any level model. Increments that
are not a rate (an emptying, a glitch, a missing hour: NaN from
``forecast.increments``) are filled with the mean increment of the same hour of the
week, since neither library accepts gaps. Forecast increments are clipped at 0 (a
level does not fall without an emptying) and walked forward from the latest reading
with ``forecast.crossing``, exactly as the project's method is.

The libraries are optional: ``pip install statsmodels statsforecast``; a library that
is not installed prints ``na``. Seconds are per 1,000 containers (fitting included;
simulation excluded). Last line: ``forecast-libraries containers=… own_mae_h=…
naive_mae_h=… statsmodels_mae_h=… statsforecast_mae_h=… own_s=… statsmodels_s=…
statsforecast_s=…``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from firmware_sim.containers import FillHistory, histories, national_fleet
from server.logistics.forecast import (
    DEFAULT_THRESHOLD,
    HORIZON_H,
    WEEK,
    Floats,
    Series,
    category_shapes,
    crossing,
    forecast,
    increments,
    naive_hours,
)
from tests.bench.bench_logistics import NOW, error_h, measurable, series_of

Model = Callable[[Floats], Floats]
"""Hourly increments up to the latest reading (no NaN) → the next HORIZON_H."""


def sample(n: int, seed: int, threshold: float) -> tuple[list[FillHistory], list[FillHistory]]:
    """``n`` measurable histories from the fleet in a fixed-seed random order, and every
    history simulated on the way (the batch the category shapes come from)."""
    containers = [p for p in national_fleet() if p.kind == "container"]
    order = np.random.default_rng(seed).permutation(len(containers))
    simulated: list[FillHistory] = []
    chosen: list[FillHistory] = []
    for h in histories([containers[int(i)] for i in order], end=NOW):
        simulated.append(h)
        if measurable(h, threshold):
            chosen.append(h)
            if len(chosen) == n:
                break
    return chosen, simulated


def filled(d: Floats) -> Floats:
    """NaN increments replaced by the mean of the same position in the week (the
    series' overall mean where that position never had one)."""
    out = d.copy()
    gaps = np.isnan(out)
    if not gaps.any():
        return out
    slot = np.arange(len(out)) % WEEK
    ok = ~gaps
    counts = np.bincount(slot[ok], minlength=WEEK)
    sums = np.bincount(slot[ok], weights=out[ok], minlength=WEEK)
    overall = float(out[ok].mean()) if ok.any() else 0.0
    means = np.divide(sums, counts, out=np.full(WEEK, overall), where=counts > 0)
    out[gaps] = means[slot[gaps]]
    return out


def library_hours(s: Series, model: Model, threshold: float) -> float:
    """Hours to the threshold from a library's forecast of the increments."""
    valid = np.flatnonzero(~np.isnan(s.values))
    if valid.size == 0:
        return math.inf
    last = int(valid[-1])
    level = float(np.clip(s.values[last], 0.0, 120.0))
    d = filled(increments(s.values[: last + 1])[1:])
    ahead = np.maximum(np.asarray(model(d), dtype=np.float64)[:HORIZON_H], 0.0)
    hours, _ = crossing(level, ahead, threshold=threshold, since=len(s.values) - (last + 1))
    return hours


def statsmodels_model() -> Model | None:
    if importlib.util.find_spec("statsmodels") is None:
        return None
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    def run(d: Floats) -> Floats:
        fit = ExponentialSmoothing(
            d, trend=None, seasonal="add", seasonal_periods=WEEK, initialization_method="estimated"
        ).fit()
        return np.asarray(fit.forecast(HORIZON_H), dtype=np.float64)

    return run


def statsforecast_model() -> Model | None:
    if importlib.util.find_spec("statsforecast") is None:
        return None
    from statsforecast.models import MSTL, AutoETS

    def run(d: Floats) -> Floats:
        model = MSTL(season_length=[24, WEEK], trend_forecaster=AutoETS(model="ZZN"))
        return np.asarray(model.forecast(y=d, h=HORIZON_H)["mean"], dtype=np.float64)

    return run


def score(
    chosen: Sequence[FillHistory], hours: Callable[[Series], float], threshold: float
) -> tuple[float, float, int]:
    """(MAE in hours, seconds per 1,000 containers, forecasts that failed)."""
    errors: list[float] = []
    failed = 0
    started = time.monotonic()
    for h in chosen:
        try:
            predicted = hours(series_of(h))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            # A fit that fails counts as "not within" (capped), as production would
            # have to show it; the count is printed.
            predicted, failed = math.inf, failed + 1
        errors.append(error_h(predicted, h.truth_hours(threshold)))
    seconds = time.monotonic() - started
    return float(np.mean(errors)), seconds * 1000 / len(chosen), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261014)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    threshold = args.threshold
    chosen, simulated = sample(args.containers, args.seed, threshold)
    print(f"sample: containers={len(chosen)} simulated={len(simulated)} seed={args.seed}")

    started = time.monotonic()
    shapes = category_shapes([series_of(h) for h in simulated])
    shapes_s = time.monotonic() - started

    def own(s: Series) -> float:
        return forecast(s, now=s.end, threshold=threshold, shape=shapes.get(s.category)).hours

    own_mae, own_s, own_failed = score(chosen, own, threshold)
    results: dict[str, tuple[float, float, int] | None] = {
        # The category shapes are part of the method's time.
        "own": (own_mae, own_s + shapes_s * 1000 / len(chosen), own_failed),
        "naive": score(chosen, lambda s: naive_hours(s, now=s.end, threshold=threshold), threshold),
    }
    for name, make in (("statsmodels", statsmodels_model), ("statsforecast", statsforecast_model)):
        model = make()
        if model is None:
            results[name] = None
            continue
        with warnings.catch_warnings():
            # Convergence and frequency warnings per series would drown the output.
            warnings.simplefilter("ignore")
            results[name] = score(
                chosen, partial(library_hours, model=model, threshold=threshold), threshold
            )
    for name, result in results.items():
        if result is None:
            print(f"method={name} not installed")
        else:
            mae, per_1000, failed = result
            print(f"method={name} mae_h={mae:.2f} s_per_1000={per_1000:.2f} failed={failed}")

    def mae_of(name: str) -> str:
        result = results[name]
        return "na" if result is None else f"{result[0]:.2f}"

    def s_of(name: str) -> str:
        result = results[name]
        return "na" if result is None else f"{result[1]:.2f}"

    print(
        f"forecast-libraries containers={len(chosen)} own_mae_h={mae_of('own')}"
        f" naive_mae_h={mae_of('naive')} statsmodels_mae_h={mae_of('statsmodels')}"
        f" statsforecast_mae_h={mae_of('statsforecast')} own_s={s_of('own')}"
        f" statsmodels_s={s_of('statsmodels')} statsforecast_s={s_of('statsforecast')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Split a dataset, optionally search hyperparameters, and fit a spec's pipeline.

Everything here is deterministic given the frame and the spec: the split, the search folds
and every estimator are seeded from ``spec.seed``, so retraining a version reproduces its
predictions bit for bit on the same library versions.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import (
    ParameterGrid,
    ParameterSampler,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline

from riskmodels.ml.pipelines import (
    SEARCH_SCORING,
    SpecError,
    TrainingSpec,
    build_pipeline,
    prepare_features,
    validate_hyperparameters,
    validate_target_counts,
)

__all__ = ["ProgressCallback", "TrainingResult", "binary_target", "split", "train"]

ProgressCallback = Callable[[str, int], None]

# Where each stage sits on the 0-100 progress scale reported to the job row.
_PROGRESS_SPLIT = 5
_PROGRESS_SEARCH_START = 10
_PROGRESS_SEARCH_END = 60
_PROGRESS_FIT = 70
_PROGRESS_PREDICT = 90
_PROGRESS_DONE = 100


@dataclass
class TrainingResult:
    """Hold a fitted pipeline with the split, labels and predicted default probabilities.

    ``train_index`` and ``test_index`` are row positions in the frame passed to :func:`train`.
    ``y_*`` are 0/1 with 1 meaning the spec's positive (default) class; ``p_*`` are the
    predicted probabilities of default. ``hyperparameters`` are the values actually fitted
    (the search winner when a search ran). ``warnings`` holds the distinct messages of warnings
    raised while fitting, e.g. non-convergence, which a validator should see.
    """

    pipeline: Pipeline
    train_index: np.ndarray
    test_index: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    p_train: np.ndarray
    p_test: np.ndarray
    hyperparameters: dict[str, Any]
    search_results: list[dict[str, Any]] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def binary_target(frame: pd.DataFrame, spec: TrainingSpec) -> np.ndarray:
    """Return the target as a 0/1 int array (1 = ``spec.positive_class``), checking it is usable.

    Raises SpecError if the column is missing, has missing values, is not binary, lacks the
    positive class or has too few rows of either class.
    """
    if spec.target not in frame.columns:
        raise SpecError("target", f"column {spec.target!r} is not in the data")
    target = frame[spec.target]
    n_missing = int(target.isna().sum())
    if n_missing:
        # Dropping unlabelled rows silently would change the population the model is judged on.
        raise SpecError("target", f"has {n_missing} missing values")
    validate_target_counts(target.value_counts(sort=False).to_dict(), spec.positive_class)
    return (target == spec.positive_class).to_numpy(dtype=np.int64)


def split(
    frame: pd.DataFrame, spec: TrainingSpec, *, y: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted train and test row positions for ``spec``'s split.

    ``stratified`` keeps the default rate equal on both sides (seeded by ``spec.seed``);
    ``out_of_time`` puts rows dated on or after ``spec.cutoff`` in the test set, which is how a
    credit model meets the future. Raises SpecError if either side is empty or single-class.
    ``y`` is ``binary_target(frame, spec)`` if the caller already has it.
    """
    if y is None:
        y = binary_target(frame, spec)
    if spec.split == "stratified":
        train_idx, test_idx = _stratified_split(y, spec.test_size, spec.seed)
        where = "test_size"
    else:
        positions = np.arange(len(frame))
        test_mask = _on_or_after_cutoff(frame, spec)
        train_idx, test_idx = positions[~test_mask], positions[test_mask]
        where = "cutoff"
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    for side, idx in (("training", train_idx), ("test", test_idx)):
        classes = np.unique(y[idx])
        if len(classes) < 2:
            raise SpecError(
                where,
                f"the {side} set has {len(idx)} rows and "
                f"{'no rows' if len(idx) == 0 else 'a single class'}; both classes are needed",
            )
    return train_idx, test_idx


def _stratified_split(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the train and test rows of scikit-learn's stratified ``train_test_split``.

    Versions already registered were split this way, so retraining one must put the same rows on
    each side; where scikit-learn refuses (a class of one row, a side smaller than the number of
    classes) its error is raised unchanged.
    """
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed)
    return train_idx, test_idx


def _on_or_after_cutoff(frame: pd.DataFrame, spec: TrainingSpec) -> np.ndarray:
    assert spec.date_column is not None and spec.cutoff is not None  # guaranteed by TrainingSpec
    if spec.date_column not in frame.columns:
        raise SpecError("date_column", f"column {spec.date_column!r} is not in the data")
    column = frame[spec.date_column]
    # Compare in UTC so naive and aware dates (and a naive cutoff) never mix.
    if pd.api.types.is_datetime64_any_dtype(column):
        dates = pd.to_datetime(column, utc=True)
    else:
        dates = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
    n_bad = int(dates.isna().sum())
    if n_bad:
        raise SpecError("date_column", f"{n_bad} rows have a missing or unparseable date")
    cutoff = pd.Timestamp(spec.cutoff)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    return (dates >= cutoff).to_numpy(dtype=bool)


def _search_candidates(spec: TrainingSpec) -> list[dict[str, Any]]:
    search = spec.search
    assert search is not None
    if search.method == "grid":
        return [dict(c) for c in ParameterGrid({k: list(v) for k, v in search.param_grid.items()})]
    space: dict[str, Any] = {}
    for name, value in search.param_distributions.items():
        if isinstance(value, Mapping):
            low, high = value["low"], value["high"]
            if value["distribution"] == "uniform":
                space[name] = stats.uniform(loc=low, scale=high - low)
            elif value["distribution"] == "loguniform":
                space[name] = stats.loguniform(low, high)
            else:  # randint; our bounds are inclusive, scipy's high is exclusive
                space[name] = stats.randint(low, high + 1)
        else:
            space[name] = list(value)
    with warnings.catch_warnings():
        # A list-only space smaller than n_iter is simply enumerated; that is not news.
        warnings.filterwarnings("ignore", message="The total space of parameters")
        sampled = list(ParameterSampler(space, n_iter=search.n_iter, random_state=spec.seed))
    # Sampled values are numpy scalars; store plain Python numbers in the version record.
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in c.items()} for c in sampled]


def _search(
    spec: TrainingSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    progress: ProgressCallback,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Cross-validate every candidate on the training rows; return the best params and all results."""
    assert spec.search is not None
    candidates = _search_candidates(spec)
    folds = StratifiedKFold(n_splits=spec.search.cv, shuffle=True, random_state=spec.seed)
    results: list[dict[str, Any]] = []
    for i, candidate in enumerate(candidates):
        params = validate_hyperparameters(
            spec.algorithm, {**spec.hyperparameters, **candidate}, field="search"
        )
        pipeline = build_pipeline(dataclasses.replace(spec, hyperparameters=params, search=None))
        scores = cross_val_score(
            pipeline, X, y, cv=folds, scoring=SEARCH_SCORING, error_score="raise"
        )
        results.append(
            {
                "params": _plain_params(params),
                "mean_test_score": float(np.mean(scores)),
                "std_test_score": float(np.std(scores)),
                "split_test_scores": [float(s) for s in scores],
            }
        )
        span = _PROGRESS_SEARCH_END - _PROGRESS_SEARCH_START
        progress("search", _PROGRESS_SEARCH_START + span * (i + 1) // len(candidates))
    means = np.array([r["mean_test_score"] for r in results])
    ranks = stats.rankdata(-means, method="min").astype(int)
    for result, rank in zip(results, ranks, strict=True):
        result["rank"] = int(rank)
    # argmax takes the first of tied candidates, so the choice is stable across runs.
    best = results[int(np.argmax(means))]["params"]
    return best, results


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


@contextmanager
def _collect_warnings(sink: list[str]) -> Iterator[None]:
    # catch_warnings swaps process-global state; training runs one job per worker process.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning):
            # Library deprecations concern developers, not the model: pass them on unchanged.
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        message = f"{w.category.__name__}: {w.message}"
        if message not in sink:
            sink.append(message)


def _positive_proba(pipeline: Pipeline, X: pd.DataFrame) -> np.ndarray:
    column = list(pipeline.classes_).index(1)
    return np.ascontiguousarray(pipeline.predict_proba(X)[:, column], dtype=np.float64)


def train(
    frame: pd.DataFrame,
    spec: TrainingSpec,
    *,
    progress: ProgressCallback | None = None,
    predict: bool = True,
) -> TrainingResult:
    """Split ``frame``, optionally search hyperparameters, fit the pipeline and predict.

    With ``predict=False`` the train and test predictions are skipped (``p_train`` and
    ``p_test`` are empty): a caller that evaluates separately need not pay for them twice.

    ``progress(stage, percent)`` is called with stages ``split`` (5), ``search`` (10..60, once
    per candidate), ``fit`` (70), ``predict`` (90; not with ``predict=False``) and ``done``
    (100). The returned pipeline expects input prepared with
    :func:`riskmodels.ml.pipelines.prepare_features`.
    """
    report: ProgressCallback = progress or (lambda stage, percent: None)
    timings: dict[str, float] = {}
    caught: list[str] = []
    started = time.perf_counter()

    t = time.perf_counter()
    y = binary_target(frame, spec)
    train_idx, test_idx = split(frame, spec, y=y)
    # Only the rows a step uses are converted: without predictions, the test rows are not.
    X_train = prepare_features(frame.iloc[train_idx], spec)
    X_test = prepare_features(frame.iloc[test_idx], spec) if predict else None
    y_train, y_test = y[train_idx], y[test_idx]
    timings["split"] = time.perf_counter() - t
    report("split", _PROGRESS_SPLIT)

    t = time.perf_counter()
    search_results: list[dict[str, Any]] | None = None
    fitted_spec = spec
    if spec.search is not None:
        with _collect_warnings(caught):
            best, search_results = _search(spec, X_train, y_train, report)
        fitted_spec = dataclasses.replace(spec, hyperparameters=best, search=None)
    timings["search"] = time.perf_counter() - t

    report("fit", _PROGRESS_FIT)
    t = time.perf_counter()
    pipeline = build_pipeline(fitted_spec)
    with _collect_warnings(caught):
        pipeline.fit(X_train, y_train)
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    if X_test is not None:
        report("predict", _PROGRESS_PREDICT)
        p_train = _positive_proba(pipeline, X_train)
        p_test = _positive_proba(pipeline, X_test)
    else:
        p_train = p_test = np.empty(0)
    timings["predict"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    report("done", _PROGRESS_DONE)

    return TrainingResult(
        pipeline=pipeline,
        train_index=train_idx,
        test_index=test_idx,
        y_train=y_train,
        y_test=y_test,
        p_train=p_train,
        p_test=p_test,
        hyperparameters=_plain_params(fitted_spec.hyperparameters),
        search_results=search_results,
        timings=timings,
        warnings=caught,
    )

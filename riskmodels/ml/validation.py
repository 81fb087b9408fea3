"""The validator's test battery: leakage, overfitting, weak segments, robustness, explanation stability, calibration.

Each test takes plain arrays and frames, returns a ``TestResult`` with its figures and a
pass / warn / fail outcome against ``Thresholds``, and proposes a finding (category,
severity, title) when it does not pass, for a validator to accept, edit or dismiss. Nothing
here knows Django; the service runs the battery as a job and stores the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score

from riskmodels.ml.metrics import json_safe

PASS, WARN, FAIL = "pass", "warn", "fail"
SEVERITY = {FAIL: "high", WARN: "medium"}
# The test AUC above which a credit model of each type is more likely leaking than that good.
PLAUSIBLE_AUC = {"application_pd": 0.95, "behavioural_pd": 0.97, "lgd": 0.95, "other": 0.97}


@dataclass(frozen=True)
class Thresholds:
    """Where each test turns from pass to warn and from warn to fail (per model, from its tier's defaults)."""

    single_feature_auc_warn: float = 0.85
    importance_share_fail: float = 0.5
    overfit_auc_gap_warn: float = 0.05
    overfit_auc_gap_fail: float = 0.10
    segment_auc_drop_warn: float = 0.10
    segment_min_rows: int = 50
    noise_scale: float = 0.05  # Gaussian noise, as a share of each numeric feature's standard deviation
    noise_auc_drop_warn: float = 0.02
    noise_pd_shift_warn: float = 0.02
    drop_auc_drop_warn: float = 0.15  # one feature carrying this much of the AUC is a single point of failure
    stability_rank_corr_warn: float = 0.9
    stability_rank_corr_fail: float = 0.7
    proxy_association_warn: float = 0.5  # Cramér's V between a feature and a protected column
    calibration_p_fail: float = 0.01
    # Hosmer-Lemeshow rejects tiny miscalibration on large samples: a fail also needs a band this far off.
    calibration_gap_fail: float = 0.05
    band_p_warn: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TestResult:
    """One test's outcome, its figures, a sentence saying what it found, and the finding it proposes."""

    name: str
    outcome: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)
    category: str = "performance"

    @property
    def proposed_finding(self) -> dict[str, str] | None:
        if self.outcome == PASS:
            return None
        return {"title": f"{self.name}: {self.message}"[:200], "category": self.category,
                "severity": SEVERITY[self.outcome]}

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"name": self.name, "outcome": self.outcome, "message": self.message,
                          "figures": self.figures, "category": self.category,
                          "proposed_finding": self.proposed_finding})


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


def single_feature_auc(values: pd.Series, y: np.ndarray) -> float | None:
    """Return how well one feature alone separates the classes: the AUC of the feature (numbers) or of its
    categories' default rates (categories), folded so that 0.5 is no signal and 1.0 a perfect split."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        score = values.astype(float).fillna(values.astype(float).median()).to_numpy()
    else:
        keys = values.astype(object).where(values.notna(), "(missing)")
        score = keys.map(pd.Series(y, index=values.index).groupby(keys).mean()).to_numpy(dtype=float)
    auc = _auc(y, score)
    return None if auc is None else max(auc, 1 - auc)


def leakage(features: pd.DataFrame, y: np.ndarray, test_auc: float, importance: dict[str, float], *,
            model_type: str, thresholds: Thresholds) -> TestResult:
    """Fail when a feature that alone separates the classes also carries most of the model's |SHAP|, or the
    test AUC is implausibly high for the model type; warn when a feature alone separates the classes well.
    The likely leak is named."""
    y = np.asarray(y)
    singles = {name: single_feature_auc(features[name], y) for name in features.columns}
    total = sum(importance.values()) or 1.0
    shares = {name: value / total for name, value in importance.items()}
    top = max(shares, key=shares.get) if shares else None
    bound = PLAUSIBLE_AUC.get(model_type, PLAUSIBLE_AUC["other"])
    figures = {"single_feature_auc": singles, "importance_share": shares, "test_auc": test_auc,
               "plausible_auc": bound}
    strong = sorted((n for n, a in singles.items() if a is not None and a >= thresholds.single_feature_auc_warn),
                    key=lambda n: -singles[n])
    # Dominance alone is common in small models; dominance by a feature that alone separates the
    # classes is what a leak looks like.
    if top is not None and shares[top] > thresholds.importance_share_fail and top in strong:
        return TestResult("leakage", FAIL, f"{top} carries {shares[top]:.0%} of the model's importance; check "
                          "that it is known before the decision", figures, "data")
    if test_auc > bound:
        suspect = strong[0] if strong else top
        return TestResult("leakage", FAIL, f"test AUC {test_auc:.3f} is above the plausible {bound} for this model "
                          f"type; the likeliest leak is {suspect}", figures, "data")
    if strong:
        return TestResult("leakage", WARN, f"{', '.join(strong)} alone separate(s) the classes (AUC "
                          f"{singles[strong[0]]:.3f})", figures, "data")
    return TestResult("leakage", PASS, "no feature dominates and the test AUC is plausible", figures, "data")


def _gaps(train: dict[str, float], test: dict[str, float]) -> dict[str, float]:
    return {"auc_gap": train["auc"] - test["auc"], "ks_gap": train["ks"] - test["ks"],
            "brier_gap": test["brier"] - train["brier"]}


def overfitting(train: dict[str, float], test: dict[str, float], *, thresholds: Thresholds) -> TestResult:
    """Compare train and test AUC, KS and Brier score; the AUC gap decides the outcome."""
    gaps = _gaps(train, test)
    figures = {"train": {k: train[k] for k in ("auc", "ks", "brier")},
               "test": {k: test[k] for k in ("auc", "ks", "brier")}, **gaps}
    gap = gaps["auc_gap"]
    text = f"train AUC {train['auc']:.3f} against test {test['auc']:.3f} (gap {gap:.3f})"
    if gap > thresholds.overfit_auc_gap_fail:
        return TestResult("overfitting", FAIL, text, figures, "conceptual_soundness")
    if gap > thresholds.overfit_auc_gap_warn:
        return TestResult("overfitting", WARN, text, figures, "conceptual_soundness")
    return TestResult("overfitting", PASS, text, figures, "conceptual_soundness")


def segments_of(values: pd.Series, *, max_bins: int = 10) -> pd.Series:
    """Return each row's segment label: the decile band of a number, or its category (missing is a segment)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > max_bins:
        bands = pd.qcut(values.astype(float), q=max_bins, duplicates="drop")
        return bands.astype(str).where(values.notna(), "(missing)")
    return values.astype(object).where(values.notna(), "(missing)").astype(str)


def weak_segments(features: pd.DataFrame, y: np.ndarray, p: np.ndarray, *, thresholds: Thresholds) -> TestResult:
    """List the segments (deciles of numbers, categories) whose AUC is well below the overall AUC."""
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    overall = _auc(y, p)
    rows, weak = [], []
    for name in features.columns:
        labels = segments_of(features[name])
        for label, index in labels.groupby(labels).groups.items():
            positions = features.index.get_indexer(index)
            if len(positions) < thresholds.segment_min_rows:
                continue
            auc = _auc(y[positions], p[positions])
            row = {"feature": name, "segment": label, "n": len(positions), "auc": auc,
                   "default_rate": float(y[positions].mean()), "mean_pd": float(p[positions].mean())}
            rows.append(row)
            if auc is not None and overall is not None and auc < overall - thresholds.segment_auc_drop_warn:
                weak.append(row)
    weak.sort(key=lambda r: r["auc"])
    figures = {"overall_auc": overall, "segments": rows, "weak": weak}
    if weak:
        names = "; ".join(f"{w['feature']} = {w['segment']} (AUC {w['auc']:.3f}, n={w['n']})" for w in weak[:5])
        return TestResult("weak_segments", WARN, f"below the overall AUC {overall:.3f}: {names}", figures)
    return TestResult("weak_segments", PASS, "no segment is well below the overall AUC", figures)


def robustness(predict: Callable[[pd.DataFrame], np.ndarray], features: pd.DataFrame, y: np.ndarray, *,
               numeric: list[str], seed: int, thresholds: Thresholds) -> TestResult:
    """Shift the numbers by small Gaussian noise, and neutralise one feature at a time (its median or mode),
    and measure the AUC and PD changes."""
    y = np.asarray(y)
    base = predict(features)
    base_auc = _auc(y, base)
    rng = np.random.default_rng(seed)
    noisy = features.copy()
    for name in numeric:
        column = noisy[name].astype(float)
        noisy[name] = column + rng.normal(0.0, thresholds.noise_scale * float(column.std() or 0.0), len(column))
    shifted = predict(noisy)
    noise = {"auc": _auc(y, shifted), "auc_drop": base_auc - _auc(y, shifted),
             "mean_abs_pd_shift": float(np.mean(np.abs(shifted - base)))}
    drops = {}
    for name in features.columns:
        neutral = features.copy()
        column = features[name]
        fill = column.median() if name in numeric else (column.mode().iloc[0] if column.notna().any() else None)
        neutral[name] = fill
        drops[name] = base_auc - _auc(y, predict(neutral))
    figures = {"auc": base_auc, "noise": noise, "drop_one_auc_drop": drops}
    worst = max(drops, key=drops.get) if drops else None
    problems = []
    if noise["auc_drop"] > thresholds.noise_auc_drop_warn or noise["mean_abs_pd_shift"] > thresholds.noise_pd_shift_warn:
        problems.append(f"noise of {thresholds.noise_scale:.0%} of a standard deviation moves the AUC by "
                        f"{noise['auc_drop']:.3f} and PDs by {noise['mean_abs_pd_shift']:.3f} on average")
    if worst is not None and drops[worst] > thresholds.drop_auc_drop_warn:
        problems.append(f"without {worst} the AUC drops by {drops[worst]:.3f}")
    if problems:
        return TestResult("robustness", WARN, "; ".join(problems), figures, "conceptual_soundness")
    return TestResult("robustness", PASS, "small noise and losing one feature barely move the model", figures,
                      "conceptual_soundness")


def explanation_stability(values: np.ndarray, features: list[str], *, seed: int, n_resamples: int = 50,
                          thresholds: Thresholds) -> TestResult:
    """Rank-correlate the global SHAP importance of bootstrap resamples of the explained rows with the whole's."""
    whole = np.abs(values).mean(axis=0)
    rng = np.random.default_rng(seed)
    correlations = []
    for _ in range(n_resamples):
        rows = rng.integers(0, len(values), len(values))
        rho = stats.spearmanr(whole, np.abs(values[rows]).mean(axis=0)).statistic
        correlations.append(1.0 if np.isnan(rho) else float(rho))
    figures = {"importance": dict(zip(features, whole.tolist(), strict=True)), "n_resamples": n_resamples,
               "rank_correlation_min": min(correlations), "rank_correlation_median": float(np.median(correlations))}
    median = figures["rank_correlation_median"]
    text = f"median rank correlation of importance across resamples {median:.3f}"
    if median < thresholds.stability_rank_corr_fail:
        return TestResult("explanation_stability", FAIL, text, figures, "explainability")
    if median < thresholds.stability_rank_corr_warn:
        return TestResult("explanation_stability", WARN, text, figures, "explainability")
    return TestResult("explanation_stability", PASS, text, figures, "explainability")


def calibration(y: np.ndarray, p: np.ndarray, *, n_bands: int = 10, thresholds: Thresholds) -> TestResult:
    """Compare predicted and observed defaults per PD band: Hosmer-Lemeshow overall, a binomial test per band."""
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    bands = []
    for index in np.array_split(order, n_bands):
        if len(index) == 0:
            continue
        n, defaults, expected = len(index), int(y[index].sum()), float(p[index].sum())
        mean_pd = expected / n
        p_value = float(stats.binomtest(defaults, n, min(max(mean_pd, 1e-12), 1 - 1e-12)).pvalue)
        bands.append({"n": n, "mean_pd": mean_pd, "default_rate": defaults / n, "defaults": defaults,
                      "expected": expected, "binomial_p": p_value})
    statistic = sum((b["defaults"] - b["expected"]) ** 2 / (b["expected"] * (1 - b["mean_pd"]))
                    for b in bands if 0 < b["mean_pd"] < 1)
    df = max(len(bands) - 2, 1)
    hl_p = float(stats.chi2.sf(statistic, df))
    figures = {"bands": bands, "hosmer_lemeshow": {"statistic": statistic, "df": df, "p_value": hl_p},
               "brier": float(brier_score_loss(y, p))}
    off = [i for i, b in enumerate(bands) if b["binomial_p"] < thresholds.band_p_warn]
    gap = max((abs(b["mean_pd"] - b["default_rate"]) for b in bands), default=0.0)
    figures["max_band_gap"] = gap
    if hl_p < thresholds.calibration_p_fail and gap > thresholds.calibration_gap_fail:
        return TestResult("calibration", FAIL, f"Hosmer-Lemeshow p = {hl_p:.4f} and a band {gap:.3f} off: predicted "
                          "PDs do not match observed default rates", figures)
    if off or hl_p < thresholds.calibration_p_fail:
        return TestResult("calibration", WARN, f"Hosmer-Lemeshow p = {hl_p:.4f}; bands "
                          f"{', '.join(str(i + 1) for i in off) or 'none'} of {len(bands)} differ from their predicted "
                          f"default rate (binomial test); the largest gap is {gap:.3f}", figures)
    return TestResult("calibration", PASS, f"predicted PDs match observed defaults (Hosmer-Lemeshow p = {hl_p:.3f})",
                      figures)


def _bins(values: pd.Series, bins: int = 5) -> pd.Series:
    """Return categories for a contingency table: quantile bins of a number, the values of anything else."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > bins:
        return pd.qcut(values.astype(float), q=bins, duplicates="drop").astype(str).where(values.notna(), "(missing)")
    return values.astype(object).where(values.notna(), "(missing)").astype(str)


def cramers_v(a: pd.Series, b: pd.Series) -> float:
    """Return Cramér's V between two columns (numbers in quantile bins): 0 is independence, 1 determination."""
    table = pd.crosstab(_bins(a), _bins(b)).to_numpy()
    if min(table.shape) < 2:
        return 0.0
    return float(stats.contingency.association(table, method="cramer"))


def proxies(features: pd.DataFrame, protected: pd.DataFrame, *, thresholds: Thresholds) -> TestResult:
    """List the features strongly associated with a protected column (Cramér's V): they can stand in for it."""
    table = {f: {g: cramers_v(features[f], protected[g]) for g in protected.columns} for f in features.columns}
    strong = sorted(((f, g, v) for f, row in table.items() for g, v in row.items()
                     if v >= thresholds.proxy_association_warn), key=lambda t: -t[2])
    figures = {"cramers_v": table, "protected": list(protected.columns)}
    if not len(protected.columns):
        return TestResult("proxies", PASS, "no protected column is recorded for this dataset", figures, "fairness")
    if strong:
        named = "; ".join(f"{f} ~ {g} (V = {v:.2f})" for f, g, v in strong[:5])
        return TestResult("proxies", WARN, f"features that may stand in for a protected characteristic: {named}",
                          figures, "fairness")
    return TestResult("proxies", PASS, "no feature is strongly associated with a protected column", figures,
                      "fairness")


def worst_outcome(results: list[TestResult]) -> str:
    """Return the battery's outcome: its worst test's."""
    outcomes = {r.outcome for r in results}
    return FAIL if FAIL in outcomes else WARN if WARN in outcomes else PASS

"""Seeded synthetic credit data for the SHAP benchmarks: 20 numeric features and a 0/1 target.

Numeric only, so that a bare ``shap.TreeExplainer`` call is a valid reference for
HistGradientBoosting (shap 0.51 misreads its categorical splits; see bench/README.md).
"""

from __future__ import annotations

from pathlib import Path

N_FEATURES = 20


def make_numeric_data(rows: int, path: Path, seed: int = 3) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(size=rows) for i in range(N_FEATURES)}
    logit = data["x0"] - 0.8 * data["x1"] + 0.5 * data["x2"] * data["x3"] - 1.0
    data["default"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    pd.DataFrame(data).to_parquet(path)

import numpy as np
import pandas as pd
import pytest

from riskmodels.ml.encoding import RowEncoder
from riskmodels.ml.pipelines import TrainingSpec, infer_categorical, prepare_features
from riskmodels.ml.training import train
from tests.conftest import GERMAN_CREDIT

PROTECTED = ("personal_status_and_sex", "age_in_years", "foreign_worker")
FAST = {"random_forest": {"n_estimators": 10, "max_depth": 4}, "gradient_boosting": {"max_iter": 10},
        "mlp": {"hidden_layer_sizes": [4], "max_iter": 20}}


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    frame = pd.read_csv(GERMAN_CREDIT)
    # Missing values in training too, so the imputers learn from them.
    frame.loc[::17, "credit_amount"] = np.nan
    frame.loc[::23, "purpose"] = None
    return frame


@pytest.mark.parametrize("algorithm", ["logistic_regression", "random_forest", "gradient_boosting", "mlp",
                                       "linear_svm"])
def test_the_row_encoder_gives_the_pipelines_matrix_bit_for_bit(german, algorithm):  # noqa: ANN001
    features = tuple(c for c in german.columns if c not in ("creditability", *PROTECTED))
    spec = TrainingSpec(algorithm=algorithm, target="creditability", positive_class="bad", features=features,
                        categorical=infer_categorical({c: german[c].dtype for c in features}),
                        hyperparameters=FAST.get(algorithm, {}))
    pipeline = train(german, spec).pipeline
    encoder = RowEncoder.from_pipeline(pipeline, spec)
    assert encoder is not None
    rows = german[list(features)].head(300).copy()
    rows.loc[rows.index[:5], "duration_in_month"] = np.nan  # missing where training had none
    rows.loc[rows.index[5:9], "purpose"] = "space travel"  # unseen
    rows.loc[rows.index[9:12], "housing"] = None
    expected = pipeline[:-1].transform(prepare_features(rows, spec))
    got = encoder.encode(rows)
    assert got.dtype == np.float64 and got.shape == expected.shape
    assert np.array_equal(got, expected)  # every bit, not close
    assert np.array_equal(encoder.encode(rows.iloc[[7]]), expected[[7]])
    unseen = encoder.unseen(rows)
    assert [i for i, u in enumerate(unseen) if u] == [5, 6, 7, 8] and unseen[5] == ["purpose"]


def test_a_pipeline_with_a_step_it_does_not_know_gets_no_encoder(german):  # noqa: ANN001
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler

    spec = TrainingSpec(algorithm="logistic_regression", target="creditability", positive_class="bad",
                        features=("duration_in_month",))
    pipeline = Pipeline([("preprocess", ColumnTransformer([("num", MinMaxScaler(), ["duration_in_month"])])),
                         ("model", LogisticRegression())])
    pipeline.fit(german[["duration_in_month"]], german["creditability"] == "bad")
    assert RowEncoder.from_pipeline(pipeline, spec) is None

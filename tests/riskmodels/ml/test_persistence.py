import hashlib
import json
import os
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from riskmodels.ml.persistence import (
    TRUSTED_TYPES,
    ArtifactIntegrityError,
    UntrustedArtifactError,
    dumps_artifact,
    environment_versions,
    load_artifact,
    save_artifact,
)
from riskmodels.ml.pipelines import ALGORITHMS, TrainingSpec, infer_categorical, prepare_features
from riskmodels.ml.training import TrainingResult, train

GERMAN_CSV = Path(__file__).resolve().parents[3] / "demo" / "german_credit.csv"
TARGET = "creditability"
FAST = {
    "random_forest": {"n_estimators": 10},
    "gradient_boosting": {"max_iter": 20},
    "mlp": {"hidden_layer_sizes": [8], "max_iter": 30},
}


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN_CSV)


def german_spec(german: pd.DataFrame, algorithm: str, **hyperparameters) -> TrainingSpec:
    features = tuple(c for c in german.columns if c != TARGET)
    return TrainingSpec(
        algorithm=algorithm,
        target=TARGET,
        positive_class="bad",
        features=features,
        categorical=infer_categorical(german[list(features)].dtypes.to_dict()),
        hyperparameters={**FAST.get(algorithm, {}), **hyperparameters},
    )


@pytest.fixture(scope="module")
def fitted(german) -> dict[str, TrainingResult]:
    return {algorithm: train(german, german_spec(german, algorithm)) for algorithm in ALGORITHMS}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_round_trips_with_identical_predictions(tmp_path, german, fitted, algorithm):
    result = fitted[algorithm]
    path = tmp_path / "model.skops"

    digest = save_artifact(result.pipeline, path)
    loaded = load_artifact(path, expected_sha256=digest)

    X = prepare_features(german, german_spec(german, algorithm))
    assert isinstance(loaded, Pipeline)
    assert np.array_equal(loaded.predict_proba(X), result.pipeline.predict_proba(X))


def test_save_returns_the_sha256_of_the_file_and_leaves_no_temporary_file(tmp_path, fitted):
    path = tmp_path / "model.skops"

    digest = save_artifact(fitted["logistic_regression"].pipeline, path)

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


def test_save_replaces_an_existing_artifact(tmp_path, fitted):
    path = tmp_path / "model.skops"
    save_artifact(fitted["logistic_regression"].pipeline, path)

    digest = save_artifact(fitted["random_forest"].pipeline, path)

    loaded = load_artifact(path, expected_sha256=digest)
    assert isinstance(loaded.named_steps["model"], RandomForestClassifier)


def test_artifacts_are_skops_zip_files_not_pickles(fitted):
    data = dumps_artifact(fitted["mlp"].pipeline)

    assert zipfile.is_zipfile(BytesIO(data))
    assert "schema.json" in zipfile.ZipFile(BytesIO(data)).namelist()


def _canonical(archive: zipfile.ZipFile) -> object:
    """An artifact's schema with skops' object ids and array file names (ids of temporaries, so
    they differ per dump) numbered by first use, and each array file replaced by its bytes."""
    ids: dict[object, int] = {}

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {k: ids.setdefault(v, len(ids)) if k == "__id__" else archive.read(v) if k == "file" else walk(v)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(json.loads(archive.read("schema.json")))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_artifacts_hold_exactly_the_schema_skops_itself_writes(fitted, algorithm):
    # Artifacts are skops' own format, so any skops release that reads skops files reads them.
    pipeline = fitted[algorithm].pipeline
    ours, theirs = zipfile.ZipFile(BytesIO(dumps_artifact(pipeline))), zipfile.ZipFile(BytesIO(sio.dumps(pipeline)))
    assert _canonical(ours) == _canonical(theirs)
    assert len(ours.namelist()) == len(theirs.namelist())


def test_loading_from_bytes_checks_the_hash_too(fitted):
    data = dumps_artifact(fitted["linear_svm"].pipeline)

    assert isinstance(load_artifact(data, expected_sha256=hashlib.sha256(data).hexdigest()), Pipeline)


def test_a_hash_mismatch_is_refused_before_loading(tmp_path, fitted):
    path = tmp_path / "model.skops"
    digest = save_artifact(fitted["logistic_regression"].pipeline, path)
    path.write_bytes(path.read_bytes() + b"tampered")

    with pytest.raises(ArtifactIntegrityError, match=f"expected {digest}"):
        load_artifact(path, expected_sha256=digest)


def test_an_artifact_with_an_untrusted_type_is_refused_with_the_type_named():
    # A pipeline that would run a shell command: exactly what an artifact must never smuggle in.
    data = sio.dumps(Pipeline([("preprocess", FunctionTransformer(os.system))]))
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted and not set(untrusted) & set(TRUSTED_TYPES)

    with pytest.raises(UntrustedArtifactError, match="not trusted and was not loaded: .*system") as info:
        load_artifact(data, expected_sha256=hashlib.sha256(data).hexdigest())
    assert info.value.types == untrusted


def test_trusted_types_are_exactly_those_our_pipelines_need(german, fitted):
    # Includes the variants that add types: isotonic calibration, numeric-only boosting.
    pipelines = [r.pipeline for r in fitted.values()]
    pipelines.append(train(german, german_spec(german, "linear_svm", calibration_method="isotonic")).pipeline)
    numeric_only = TrainingSpec(
        algorithm="gradient_boosting", target=TARGET, positive_class="bad",
        features=("duration_in_month", "credit_amount"), hyperparameters={"max_iter": 5},
    )
    pipelines.append(train(german, numeric_only).pipeline)

    needed = set()
    for pipeline in pipelines:
        needed |= set(sio.get_untrusted_types(data=sio.dumps(pipeline)))

    assert needed == set(TRUSTED_TYPES)


def test_environment_versions_name_python_and_the_numeric_libraries():
    versions = environment_versions()

    assert set(versions) == {"python", "scikit-learn", "numpy", "scipy", "pandas", "shap", "skops"}
    assert all(isinstance(v, str) and v for v in versions.values())
    assert versions["scikit-learn"] == __import__("sklearn").__version__

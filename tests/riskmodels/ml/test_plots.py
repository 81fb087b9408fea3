import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from riskmodels.ml.metrics import evaluate
from riskmodels.ml.plots import PLOT_NAMES, render_evaluation_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def metrics_for(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=400) + 1.5 * y - 1.3)))
    return evaluate(y, p, n_bootstrap=0)


@pytest.fixture(scope="module")
def metrics_a() -> dict:
    return metrics_for(0)


@pytest.fixture(scope="module")
def images_a(metrics_a) -> dict[str, bytes]:
    return render_evaluation_plots(metrics_a)


def test_every_plot_is_rendered_as_png(images_a):
    images = images_a

    assert tuple(images) == PLOT_NAMES == ("roc", "pr", "calibration", "deciles")
    assert all(image.startswith(PNG_SIGNATURE) for image in images.values())


def test_rendering_is_byte_for_byte_deterministic(metrics_a, images_a):
    first = images_a
    other = render_evaluation_plots(metrics_for(1))
    again = render_evaluation_plots(metrics_a)

    assert first == again
    assert all(first[name] != other[name] for name in PLOT_NAMES)


def test_plots_render_from_metrics_after_a_json_round_trip(metrics_a, images_a):
    stored = json.loads(json.dumps(metrics_a))

    assert render_evaluation_plots(stored) == images_a


def test_pngs_carry_no_software_or_timestamp_metadata(images_a):
    for image in images_a.values():
        assert b"Software" not in image
        assert b"tIME" not in image


def test_rendering_leaves_no_pyplot_figures_open(metrics_a):
    before = plt.get_fignums()

    render_evaluation_plots(metrics_a)

    assert plt.get_fignums() == before

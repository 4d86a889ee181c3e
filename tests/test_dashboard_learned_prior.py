"""The training default's model (``prior`` auto: the VampPrior) from `train` to every dashboard page.

The other dashboard tests use models built with `build_vae`'s standard prior; this one trains through
`vae_keras.training.train` with the run defaults, as `make demo` does, so the model the README's first
command shows is the one tested here.
"""

import json
import os

import pytest

pytest.importorskip("streamlit")

from test_dashboard_app import assert_ok, chart_spec, charts, goto, make_app  # noqa: E402

PAGES = ["Overview", "Loss curves", "Reconstructions", "Random samples", "Latent space", "Compare"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``vae-keras train --dataset mnist-10k`` with the defaults, shrunk: 1 epoch, 16 hidden units, a 3-D latent."""
    from vae_keras import training

    out = tmp_path_factory.mktemp("learned_prior") / "models"
    config = training.TrainConfig(dataset="mnist-10k", epochs=1, hidden=(16,), latent_dim=3, eval_iw_samples=5,
                                  out=str(out), name="default", verbose=0)
    result = training.train(config)
    return out, result["export_path"]


def test_the_training_default_exports_a_vampprior_model(default_run):
    from vae_keras import exported

    _, path = default_run
    card = exported.read_card(path)
    with open(os.path.join(path, "assets.extra", "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert card["prior"] == "vamp" and config["prior"] == "vamp"  # auto, resolved and recorded
    assert card["prior_components"] == 100
    model = exported.ExportedVAE(path)
    assert "log_prior" in model.signatures  # the learned prior's density is served too
    a, b = model.sample(4, seed=3)["x_mean"], model.sample(4, seed=3)["x_mean"]
    assert a.shape == (4, 28, 28, 1) and (a == b).all()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_the_default_model_without_an_error(default_run, monkeypatch, page):
    models_dir, _ = default_run
    at = goto(make_app(models_dir, monkeypatch), page)
    assert_ok(at)
    text = " ".join(str(e.value) for kind in ("markdown", "caption", "subheader", "info", "warning")
                    for e in getattr(at, kind))
    if page == "Random samples":
        assert "learned 'vamp' prior" in text
    if page == "Latent space":
        titles = [str(chart_spec(c).get("title", "")) for c in charts(at)]
        assert not any("Test KL per latent dim" in t for t in titles)  # no empty KL chart...
        assert "This model's prior is learned ('vamp')" in text  # ...but the reason
        assert at.selectbox(key="trav_centre").value == "a test image's z_mean"  # z = 0 is not this prior's mean
        assert "z = 0 (prior mean)" not in at.selectbox(key="trav_centre").options

"""Bad input across the CLI and the Python API: one-line errors, nothing changed, never a crash.

Property-based tests throw random shapes, dtypes and values at the exported signatures' Python
front (`ExportedVAE`): every call either returns finite arrays of the contract's shapes or raises
a `VaeKerasError` that says what was received.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from vae_keras import exported
from vae_keras.cli import main
from vae_keras.errors import VaeKerasError


@pytest.fixture(scope="module")
def loaded(tiny_export):
    return exported.ExportedVAE(tiny_export[1])


_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, np.int64, np.bool_])
_SHAPES = st.one_of(
    st.just((3, 28, 28, 1)),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=30),
)
_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])


def _cast(values, dtype):
    with np.errstate(all="ignore"):
        return np.nan_to_num(values, nan=0, posinf=255, neginf=0).astype(dtype) if np.dtype(dtype).kind in "iub" else values.astype(dtype)


@_SETTINGS
@given(values=hnp.arrays(np.float64, _SHAPES, elements=st.floats(allow_nan=True, allow_infinity=True)), dtype=_DTYPES)
def test_reconstruct_and_encode_take_any_array_without_crashing(loaded, values, dtype):
    arrays = _cast(values, dtype)
    for method in (loaded.reconstruct, loaded.encode):
        try:
            out = method(arrays)
        except VaeKerasError as e:
            assert ("(28, 28, 1)" in str(e) and str(arrays.shape) in str(e)) or "[0, 1]" in str(e)
            continue
        assert arrays.shape[1:] == (28, 28, 1)
        assert all(v.shape[0] == arrays.shape[0] and np.all(np.isfinite(v)) for v in out.values())


@_SETTINGS
@given(values=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
                         elements=st.floats(-5, 5)), dtype=_DTYPES)
def test_decode_takes_any_array_without_crashing(loaded, values, dtype):
    z = _cast(values, dtype)
    try:
        out = loaded.decode(z)
    except VaeKerasError as e:
        assert "[N, 4]" in str(e)
        return
    assert out["x_mean"].shape == (z.shape[0], 28, 28, 1)
    assert np.all((out["x_mean"] >= 0) & (out["x_mean"] <= 1))


@_SETTINGS
@given(n=st.integers(0, 40), seed=st.integers(-2**31, 2**31 - 1), temperature=st.floats(0, 3))
def test_sample_any_count_seed_and_temperature(loaded, n, seed, temperature):
    out = loaded.sample(n, seed=seed, temperature=temperature)
    assert out["x_mean"].shape == (n, 28, 28, 1) and out["z"].shape == (n, 4)


def test_a_label_for_an_unconditional_model_is_refused(loaded):
    with pytest.raises(VaeKerasError, match="not conditional"):
        loaded.sample(2, label=1)


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("vae-keras")]
    assert len(lines) == 1, err
    return lines[0]


def test_truncated_image_in_a_folder(tmp_path, capsys):
    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    data = (folder / "1.png").read_bytes()
    (folder / "1.png").write_bytes(data[: len(data) // 2])
    assert main(["train", "--dataset", str(tmp_path / "imgs"), "--out", str(tmp_path / "m")]) == 2
    assert "1.png" in _err(capsys)
    assert not (tmp_path / "m").exists()


def test_mixed_sizes_and_modes_are_normalised_not_fatal(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / f"rgb{i}.png")
    Image.fromarray(rng.integers(0, 255, (20, 16), dtype=np.uint8)).save(folder / "gray_big.png")
    Image.fromarray(rng.integers(0, 255, (12, 12, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    assert main(["train", "--dataset", str(folder), "--epochs", "1", "--hidden", "8", "--latent-dim", "2",
                 "--eval-iw-samples", "2", "--out", str(tmp_path / "m"), "--verbose", "0"]) == 0
    assert exported.read_card(str(tmp_path / "m" / "imgs" / "1"))["image_shape"] == [12, 12, 3]


def test_labels_that_do_not_match_the_images(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((20, 8, 8), np.uint8), y_train=np.zeros(19, np.int64))
    assert main(["train", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m")]) == 2
    line = _err(capsys)
    assert "20" in line and "19" in line


def test_a_savedmodel_with_other_signatures_is_refused_by_every_command(tmp_path, capsys):
    import json

    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    path = tmp_path / "other" / "1"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.f.get_concrete_function()})
    (path / "assets.extra").mkdir()
    (path / "assets.extra" / "model_card.json").write_text(json.dumps({"image_shape": [2, 1, 1], "latent_dim": 1}))
    assert main(["sample", str(tmp_path / "other"), "--output", str(tmp_path / "g.png")]) == 2
    line = _err(capsys)
    assert "Signature 'serving_default'" in line and "x_mean" in line
    assert main(["evaluate", str(tmp_path / "other"), "--dataset", "mnist-10k"]) == 2
    assert "Signature 'serving_default'" in _err(capsys)  # evaluate checks the SavedModel like sample
    assert not os.path.exists(tmp_path / "g.png")


def test_temperature_scales_the_same_seeded_z(loaded):
    base = loaded.sample(5, seed=11)
    hot = loaded.sample(5, seed=11, temperature=2.0)
    np.testing.assert_allclose(hot["z"], 2.0 * base["z"], rtol=1e-6)
    with pytest.raises(VaeKerasError, match="num_samples=-1"):
        loaded.sample(-1)

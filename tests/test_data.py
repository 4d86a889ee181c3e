"""Tests of vae_keras.data: dataset specs, loaders, validation and tf.data pipelines.

Expectations are computed independently of the loader (raw np.load, PIL, hand-written IDX bytes).
"""

import gzip
import hashlib
import io
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from vae_keras import data
from vae_keras.errors import ConfigError, DataError

MNIST_NPZ = Path(data.__file__).parent.parent / "data_files" / "mnist10k.npz"
MNIST_SHA256 = "088058cfb015d8cfce5208785bdda5b8bdd1748b73c1e2113fcfae4e12f08b32"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def collect(ds):
    """All batches of a pipeline concatenated: x, or (x, y)."""
    batches = list(ds.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    return np.concatenate(batches)


def holdout_expected(n):
    """The documented hold-out rule, written out: fixed permutation (seed 0), first max(1, n//10) are test."""
    perm = np.random.default_rng(0).permutation(n)
    k = max(1, n // 10)
    return np.sort(perm[k:]), np.sort(perm[:k])


@pytest.fixture(scope="module")
def mnist():
    return data.load_images("mnist-10k")


# ------------------------------------------------------------------------------------------
# mnist-10k
# ------------------------------------------------------------------------------------------


def test_mnist10k_file_is_the_shipped_one():
    assert hashlib.sha256(MNIST_NPZ.read_bytes()).hexdigest() == MNIST_SHA256


def test_mnist10k_shapes_dtypes_labels(mnist):
    raw = np.load(MNIST_NPZ)
    assert mnist.name == "mnist-10k"
    assert mnist.x_train.shape == (8000, 28, 28, 1) and mnist.x_test.shape == (2000, 28, 28, 1)
    assert mnist.x_train.dtype == np.uint8
    assert mnist.image_shape == (28, 28, 1)
    assert all(type(d) is int for d in mnist.image_shape)
    np.testing.assert_array_equal(mnist.x_train[..., 0], raw["x_train"])
    np.testing.assert_array_equal(mnist.x_test[..., 0], raw["x_test"])
    assert mnist.y_train.dtype == np.int32 and mnist.y_test.dtype == np.int32
    np.testing.assert_array_equal(mnist.y_train, raw["y_train"].astype(np.int32))
    np.testing.assert_array_equal(mnist.y_test, raw["y_test"].astype(np.int32))
    assert set(np.unique(mnist.y_train)) == set(range(10))
    assert mnist.class_names == tuple(str(i) for i in range(10))
    assert mnist.num_classes == 10
    assert mnist.x_train.min() == 0 and mnist.x_train.max() == 255
    # Real digits: mostly background, roughly 13% mean intensity.
    assert 0.08 < mnist.x_train.mean() / 255 < 0.2


def test_mnist10k_pipeline_values(mnist):
    x = collect(mnist.pipeline("test", batch_size=500))
    assert x.dtype == np.float32 and x.shape == (2000, 28, 28, 1)
    np.testing.assert_array_equal(x, mnist.x_test.astype(np.float32) / np.float32(255))
    assert x.min() == 0.0 and x.max() == 1.0


def test_load_dataset_returns_train_and_test(mnist):
    train, test = data.load_dataset("mnist-10k", batch_size=100, with_labels=True)
    assert train.element_spec[0].shape.as_list() == [None, 28, 28, 1]
    assert train.element_spec[1].dtype.name == "int32"
    assert sum(len(b[0]) for b in train.as_numpy_iterator()) == 8000
    _xt, yt = collect(test)  # unshuffled by default
    np.testing.assert_array_equal(yt, mnist.y_test)


# ------------------------------------------------------------------------------------------
# npz
# ------------------------------------------------------------------------------------------


def test_npz_labels_take_their_names_from_a_classes_txt_beside_the_file(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((6, 2, 2), np.uint8), y_train=np.arange(6) % 3)
    assert data.load_images(str(p)).class_names is None
    (tmp_path / "classes.txt").write_text("cat\n\ndog\nbird\n", encoding="utf-8")
    assert data.load_images(str(p)).class_names == ("cat", "dog", "bird")
    (tmp_path / "classes.txt").write_text("cat\ndog\n", encoding="utf-8")  # too few for labels 0..2
    with pytest.raises(DataError, match="has 2 names but the labels go up to 2"):
        data.load_images(str(p))
    named = tmp_path / "named.npz"  # the archive's own class_names win
    np.savez(named, x_train=np.zeros((6, 2, 2), np.uint8), y_train=np.arange(6) % 3, class_names=np.array(["a", "b", "c"]))
    assert data.load_images(str(named)).class_names == ("a", "b", "c")


def test_npz_round_trip_uint8_and_float(tmp_path):
    rng = np.random.default_rng(1)
    x_tr = rng.integers(0, 256, (30, 5, 4), dtype=np.uint8)
    x_te = rng.integers(0, 256, (7, 5, 4, 1), dtype=np.uint8)
    y_tr, y_te = rng.integers(0, 3, 30), rng.integers(0, 3, 7)
    p = tmp_path / "d.npz"
    np.savez(p, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, class_names=np.array(["a", "b", "c"]))
    d = data.load_images(str(p))
    assert d.name == str(p.resolve()) or d.name == os.path.abspath(p)
    assert d.image_shape == (5, 4, 1)
    np.testing.assert_array_equal(
        data.to_float(d.x_train), x_tr[..., None].astype(np.float32) / np.float32(255)
    )
    np.testing.assert_array_equal(d.x_test, x_te)
    np.testing.assert_array_equal(d.y_train, y_tr)
    assert d.y_train.dtype == np.int32
    assert d.class_names == ("a", "b", "c") and d.num_classes == 3
    xs, ys = collect(d.pipeline("test", batch_size=3, with_labels=True))
    np.testing.assert_array_equal(xs, x_te.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ys, y_te)

    xf = rng.random((12, 3, 2, 3)).astype(np.float32)
    xf[0, 0, 0] = [0.0, 1.0, 0.5]
    p2 = tmp_path / "f.npz"
    np.savez(p2, x_train=xf, x_test=xf[:2])
    d2 = data.load_images(p2)  # a Path works as well
    assert d2.x_train.dtype == np.float32 and d2.y_train is None and d2.num_classes is None
    np.testing.assert_array_equal(collect(d2.pipeline("train", batch_size=5, shuffle=False)), xf)


def test_npz_other_integer_and_bool_dtypes(tmp_path):
    p = tmp_path / "i.npz"
    x = np.arange(20 * 4, dtype=np.int64).reshape(20, 2, 2) % 256
    np.savez(p, x_train=x.astype(np.int16), x_test=np.ones((2, 2, 2), bool))
    d = data.load_images(p)
    assert d.x_train.dtype == np.uint8 and d.x_test.dtype == np.uint8
    np.testing.assert_array_equal(d.x_train[..., 0], x)
    assert (d.x_test == 255).all()


def test_npz_without_test_split_holds_out_ten_percent(tmp_path):
    n = 57  # 57 // 10 = 5 test images (57 // 9 would be 6)
    x = np.repeat(np.arange(n, dtype=np.uint8), 9).reshape(n, 3, 3)  # image i is filled with i
    y = np.arange(n) % 4
    p = tmp_path / "h.npz"
    np.savez(p, x_train=x, y_train=y)
    d = data.load_images(p)
    tr, te = holdout_expected(n)
    assert len(d.x_test) == 5 and len(d.x_train) == 52
    np.testing.assert_array_equal(d.x_train[:, 0, 0, 0], tr)
    np.testing.assert_array_equal(d.x_test[:, 0, 0, 0], te)
    np.testing.assert_array_equal(d.y_test, y[te])
    # The same rule every time.
    np.testing.assert_array_equal(data.load_images(p).x_test, d.x_test)


def test_npz_rgba_is_composited_on_black(tmp_path):
    x = np.zeros((2, 1, 2, 4), np.uint8)
    x[..., :3] = 200
    x[0, 0, 0, 3] = 255  # opaque
    x[0, 0, 1, 3] = 0  # transparent
    x[1, :, :, 3] = 128
    p = tmp_path / "a.npz"
    np.savez(p, x_train=x, x_test=x)
    d = data.load_images(p)
    assert d.image_shape == (1, 2, 3)
    np.testing.assert_array_equal(d.x_test[0, 0, 0], [200, 200, 200])
    np.testing.assert_array_equal(d.x_test[0, 0, 1], [0, 0, 0])
    np.testing.assert_array_equal(d.x_test[1, 0, 0], [round(200 * 128 / 255)] * 3)
    xf = x.astype(np.float32) / 255
    np.savez(p, x_train=xf, x_test=xf)
    f = data.load_images(p)
    assert f.x_train.dtype == np.float32 and f.image_shape == (1, 2, 3)
    np.testing.assert_allclose(f.x_test[:, 0, 1], [[0, 0, 0], [200 / 255 * 128 / 255] * 3], rtol=1e-6)


def test_npz_image_size_resizes(tmp_path):
    p = tmp_path / "r.npz"
    np.savez(p, x_train=np.full((10, 8, 8), 100, np.uint8))
    d = data.load_images(p, image_size=(4, 6))
    assert d.image_shape == (4, 6, 1)
    assert (d.x_train == 100).all()  # bilinear resize of a constant image stays constant


@pytest.mark.parametrize(
    "arrays, match",
    [
        (
            dict(x_train=np.full((4, 2, 2), np.nan, np.float32), x_test=np.zeros((1, 2, 2))),
            r"x_train.*16 NaN or infinite",
        ),
        (
            dict(x_train=np.zeros((4, 2, 2)), x_test=np.array([[[np.inf, 0], [0, 0]]])),
            r"x_test.*1 NaN or infinite",
        ),
        (
            dict(x_train=np.linspace(-0.5, 3.0, 16).reshape(4, 2, 2)),
            r"from -0\.5 to 3.*Scale the pixels to \[0, 1\]",
        ),
        (dict(x_train=np.full((4, 2, 2), 300, np.int32)), r"from 300 to 300, outside 0\.\.255"),
        (
            dict(x_train=np.zeros((4, 5, 5), np.uint8), x_test=np.zeros((2, 5, 6), np.uint8)),
            r"x_test.*\(5, 6, 1\).*\(5, 5, 1\)",
        ),
        (
            dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=np.zeros(3, int)),
            r"y_train.*3 labels but x_train has 4 images",
        ),
        (
            dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=np.eye(4, dtype=int)),
            r"y_train.*shape \(4, 4\).*argmax",
        ),
        (dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=np.zeros(4)), r"y_train.*dtype float64"),
        (dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=-np.ones(4, int)), r"labels from -1"),
        (dict(x_train=np.zeros((4, 2, 2, 5), np.uint8)), r"5 channels"),
        (dict(x_train=np.zeros((4, 784), np.uint8)), r"shape \(4, 784\).*Reshape"),
        (dict(x_train=np.zeros((0, 2, 2), np.uint8)), r"no images"),
        (dict(x_train=np.zeros((1, 2, 2), np.uint8)), r"only 1 image"),
        (
            dict(
                x_train=np.zeros((4, 2, 2), np.uint8),
                x_test=np.zeros((1, 2, 2), np.uint8),
                y_train=np.zeros(4, int),
            ),
            r"y_train but no y_test",
        ),
        (
            dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.zeros(4)),
            r"no 'x_train'.*\['images', 'labels'\]",
        ),
        (
            dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=np.arange(4), class_names=np.array(["a"])),
            r"1 names but the labels go up to 3",
        ),
        (dict(x_train=np.full((3, 2, 2), "a")), r"dtype <U1"),
    ],
)
def test_npz_bad_contents_raise_data_error(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=match) as info:
        data.load_images(p)
    assert str(p) in str(info.value)


def test_npz_object_array_is_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x_train=np.array([np.zeros((2, 2)), "x"], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        data.load_images(p)


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a zip file at all", None],
    ids=["empty", "text", "truncated-zip"],
)
def test_npz_corrupt_file_raises_data_error(tmp_path, content):
    p = tmp_path / "c.npz"
    if content is None:
        np.savez(p, x_train=np.zeros((100, 8, 8), np.uint8))
        content = p.read_bytes()[:200]
    p.write_bytes(content)
    with pytest.raises(DataError, match="not a readable .npz"):
        data.load_images(p)


def test_npy_file_named_npz_and_other_files(tmp_path):
    p = tmp_path / "x.npz"
    with open(p, "wb") as f:
        np.save(f, np.zeros((3, 2, 2)))
    with pytest.raises(DataError, match="single array"):
        data.load_images(p)
    t = tmp_path / "x.csv"
    t.write_text("1,2\n")
    with pytest.raises(DataError, match="not an .npz file"):
        data.load_images(t)


# Hypothesis: anything thrown at the npz loader gives valid ImageData or DataError, nothing else.
_dtypes = st.sampled_from(
    [
        np.uint8,
        np.int8,
        np.int16,
        np.uint16,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
    ]
)


@st.composite
def _npz_contents(draw):
    """Mostly plausible image arrays, with every kind of defect mixed in."""
    n = draw(st.sampled_from([2, 3, 5, 1, 4, 0]))

    def image_array(hw):
        dtype = np.dtype(draw(_dtypes))
        plausible = st.tuples(st.just(n), st.just(hw[0]), st.just(hw[1])) | st.tuples(
            st.just(n), st.just(hw[0]), st.just(hw[1]), st.sampled_from([1, 2, 3, 4])
        )
        shape = draw(plausible | hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))
        if dtype.kind == "f":
            in_range = st.floats(0, 1, width=dtype.itemsize * 8)
            elements = in_range | st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.5, 255.0])
            elements = draw(st.sampled_from([in_range, elements]))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            in_range = st.integers(0, min(255, int(info.max)))
            elements = draw(st.sampled_from([in_range, in_range | st.integers(int(info.min), int(info.max))]))
        else:
            elements = None
        return draw(hnp.arrays(dtype, shape, elements=elements))

    hw = draw(
        st.tuples(st.integers(1, 4), st.integers(1, 4)) | st.tuples(st.integers(0, 4), st.integers(0, 4))
    )
    out = {"x_train": image_array(hw)}
    if draw(st.booleans()):
        hw_test = draw(st.just(hw) | st.tuples(st.integers(0, 4), st.integers(0, 4)))
        out["x_test"] = image_array(hw_test)
    if draw(st.booleans()):
        for key in ("y_train", "y_test"):
            if key == "y_test" and "x_test" not in out and draw(st.booleans()):
                continue
            length = draw(st.just(n) | st.integers(0, 6))
            dtype = draw(st.sampled_from([np.int64, np.uint8, np.float32]))
            elements = st.integers(0, 9) if dtype != np.float32 else None
            out[key] = draw(hnp.arrays(dtype, (length,), elements=draw(st.sampled_from([elements, None]))))
    if draw(st.integers(0, 9)) == 7:
        out["images"] = out.pop("x_train")
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_npz_contents())
def test_npz_loader_property_valid_or_data_error(arrays):
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "h.npz")
        np.savez(p, **arrays)
        try:
            d = data.load_images(p)
        except DataError as e:
            assert p in str(e)
            return
    for x in (d.x_train, d.x_test):
        assert x.ndim == 4 and x.shape[-1] in (1, 3) and len(x) >= 1
        f = data.to_float(x)
        assert f.dtype == np.float32 and np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
    assert d.x_train.shape[1:] == d.x_test.shape[1:]
    if d.y_train is not None:
        assert d.y_train.dtype == np.int32 and d.y_train.shape == (len(d.x_train),)
        assert d.y_test.shape == (len(d.x_test),) and d.y_train.min(initial=0) >= 0


# ------------------------------------------------------------------------------------------
# IDX
# ------------------------------------------------------------------------------------------


def write_idx(path, arr, gz):
    arr = np.asarray(arr, np.uint8)
    magic = 0x00000800 | arr.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if gz:
        path = str(path) + ".gz"
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        Path(path).write_bytes(payload)
    return path


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_folder_round_trip(tmp_path, gz):
    rng = np.random.default_rng(2)
    x_tr, x_te = rng.integers(0, 256, (25, 6, 5)), rng.integers(0, 256, (8, 6, 5))
    y_tr, y_te = rng.integers(0, 10, 25), rng.integers(0, 10, 8)
    write_idx(tmp_path / "train-images-idx3-ubyte", x_tr, gz)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x_te, gz)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y_tr, gz)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y_te, gz)
    (tmp_path / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    d = data.load_images(str(tmp_path))
    assert d.name == str(tmp_path)
    np.testing.assert_array_equal(d.x_train[..., 0], x_tr)
    np.testing.assert_array_equal(d.x_test[..., 0], x_te)
    np.testing.assert_array_equal(d.y_train, y_tr)
    np.testing.assert_array_equal(d.y_test, y_te)
    assert d.class_names == tuple(f"c{i}" for i in range(10))


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist, the README's example
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR), reason=f"needs Fashion-MNIST's IDX labels in {FASHION_MNIST_DIR}")
def test_idx_fashion_mnist_is_recognised_by_its_labels(tmp_path):
    """IDX has no class names: Fashion-MNIST's ten come with the package, recognised by the training
    labels wherever the folder is and gzipped or not; a classes.txt wins; other labels get none."""
    y = data.read_idx(os.path.join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz"), "labels")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((len(y), 1, 1)), gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y, gz=False)
    assert data.load_images(tmp_path).class_names == FASHION_NAMES
    (tmp_path / "classes.txt").write_text("\n".join(f"k{i}" for i in range(10)))
    assert data.load_images(tmp_path).class_names == tuple(f"k{i}" for i in range(10))
    (tmp_path / "classes.txt").unlink()
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    write_idx(tmp_path / "train-labels-idx1-ubyte", y2, gz=False)
    assert data.load_images(tmp_path).class_names is None


def test_idx_classes_txt_with_too_few_names_is_refused(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 4, 4)), gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(10) % 3, gz=False)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"classes.txt' \(one name per line\) has 2 names but the labels go up to 2"):
        data.load_images(tmp_path)


def test_idx_classes_txt_names_reach_the_card_and_sample_label(tmp_path, capsys):
    """A conditional model trained on an IDX folder with classes.txt: the card has the names and
    `vae-keras sample --label NAME` takes them in any letter case (the README's `--label sandal`)."""
    from vae_keras import exported
    from vae_keras.cli import main

    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (40, 8, 8)), gz=True)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(40) % 3, gz=True)
    (folder / "classes.txt").write_text("Coat\nSandal\nAnkle boot\n")
    assert main(["train", "--dataset", str(folder), "--conditional", "--epochs", "1", "--hidden", "8",
                 "--latent-dim", "2", "--batch-size", "16", "--eval-iw-samples", "1", "--out", str(tmp_path / "m"),
                 "--name", "c", "--verbose", "0"]) == 0
    assert exported.read_card(str(tmp_path / "m" / "c" / "1"))["class_names"] == ["Coat", "Sandal", "Ankle boot"]
    out = tmp_path / "sandal.png"
    assert main(["sample", str(tmp_path / "m" / "c"), "--label", "sandal", "--num", "2", "--output", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "m" / "c"), "--label", "boot", "--output", str(tmp_path / "x.png")]) == 2
    assert "'boot' is neither a class index nor one of" in capsys.readouterr().err


def test_idx_without_labels_or_test_split(tmp_path):
    x = np.arange(20 * 4).reshape(20, 2, 2) % 256
    write_idx(tmp_path / "train-images-idx3-ubyte", x, gz=True)
    d = data.load_images(tmp_path)
    tr, te = holdout_expected(20)
    assert d.y_train is None and d.y_test is None
    np.testing.assert_array_equal(d.x_test[..., 0], x[te])
    np.testing.assert_array_equal(d.x_train[..., 0], x[tr])


def test_idx_truncated_file(tmp_path):
    x = np.zeros((10, 4, 4))
    p = write_idx(tmp_path / "train-images-idx3-ubyte", x, gz=False)
    Path(p).write_bytes(Path(p).read_bytes()[:-7])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte' is truncated.*176 bytes, received 169"):
        data.load_images(tmp_path)


def test_idx_truncated_gzip(tmp_path):
    rng = np.random.default_rng(0)
    p = write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (50, 10, 10)), gz=True)
    Path(p).write_bytes(Path(p).read_bytes()[:300])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        data.load_images(tmp_path)


def test_idx_bad_magic_and_mismatched_labels(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 4, 4)), gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 4, 4)), gz=False)
    # A label file written where images are expected: magic 0x801.
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4), gz=False)
    with pytest.raises(DataError, match="y_test.*4 labels but x_test has 3 images"):
        data.load_images(tmp_path)
    shutil.copy(tmp_path / "train-labels-idx1-ubyte", tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match=r"magic number 0x00000801; expected 0x00000803"):
        data.load_images(tmp_path)


def test_idx_labels_for_one_split_only(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 4, 4)), gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 4, 4)), gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(10), gz=False)
    with pytest.raises(DataError, match="no t10k-labels"):
        data.load_images(tmp_path)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist_idx_folder():
    d = data.load_images(FASHION_DIR)
    assert d.x_train.shape == (60000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10


# ------------------------------------------------------------------------------------------
# Image folders
# ------------------------------------------------------------------------------------------


def _save(path, arr, mode=None, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8), mode=mode).save(path, format=fmt)
    return path


def test_image_folder_with_classes_and_splits(tmp_path):
    rng = np.random.default_rng(3)
    rgb = lambda h=8, w=6: rng.integers(0, 256, (h, w, 3))  # noqa: E731
    files = {
        "train/cat/b.png": rgb(),
        "train/cat/a.PNG": rgb(),
        "train/dog/x.jpg": rgb(),
        "train/dog/y.jpeg": rgb(),
        "train/dog/small.png": rgb(5, 4),  # the odd size: resized to the majority (8, 6)
        "test/cat/t.png": rgb(),
        "test/dog/u.png": rng.integers(0, 256, (8, 6)),  # grayscale: replicated into RGB
    }
    for name, arr in files.items():
        _save(tmp_path / name, arr)
    (tmp_path / "train" / "notes.txt").write_text("ignored")
    d = data.load_images(tmp_path)
    assert d.name == str(tmp_path)
    assert d.class_names == ("cat", "dog")
    assert d.image_shape == (8, 6, 3)
    np.testing.assert_array_equal(d.y_train, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(d.y_test, [0, 1])
    order = [
        "train/cat/a.PNG",
        "train/cat/b.png",
        "train/dog/small.png",
        "train/dog/x.jpg",
        "train/dog/y.jpeg",
    ]
    for i, name in enumerate(order):
        with Image.open(tmp_path / name) as im:  # independent reading (JPEG is lossy)
            im = im.convert("RGB")
            if im.size != (6, 8):
                im = im.resize((6, 8), Image.BILINEAR)
            np.testing.assert_array_equal(d.x_train[i], np.asarray(im), err_msg=name)
    gray = files["test/dog/u.png"].astype(np.uint8)
    np.testing.assert_array_equal(d.x_test[1], np.stack([gray] * 3, -1))
    x, _y = collect(d.pipeline("train", batch_size=2, with_labels=True, shuffle=False))
    np.testing.assert_array_equal(x, d.x_train.astype(np.float32) / np.float32(255))


def test_image_folder_symlink_cycles_end_and_each_image_is_read_once(tmp_path):
    for c, value in (("a", 10), ("b", 200)):
        _save(tmp_path / "train" / c / "deep" / "p.png", np.full((4, 4), value))
        _save(tmp_path / "test" / c / "q.png", np.full((4, 4), value))
    os.symlink("..", tmp_path / "train" / "a" / "deep" / "up")  # -> train/a: a cycle
    os.symlink("../..", tmp_path / "train" / "b" / "deep" / "root")  # -> train: an ancestor of the class folder
    os.symlink("deep", tmp_path / "train" / "b" / "alias")  # the same folder twice
    d = data.load_images(tmp_path)
    assert d.class_names == ("a", "b")
    np.testing.assert_array_equal(d.y_train, [0, 1])  # one image per class, no copies from the cycles
    np.testing.assert_array_equal(d.x_train[:, 0, 0, 0], [10, 200])


def test_image_folder_grayscale_unlabelled_with_holdout(tmp_path):
    for i in range(12):
        _save(tmp_path / f"img{i:02d}.png", np.full((7, 9), i * 20))
    _save(tmp_path / "odd.png", np.full((3, 3), 250))  # different size, resized
    d = data.load_images(tmp_path)
    assert d.image_shape == (7, 9, 1)
    assert d.y_train is None and d.class_names is None and d.num_classes is None
    assert len(d.x_train) == 12 and len(d.x_test) == 1
    all_values = sorted(int(v) for v in np.concatenate([d.x_train, d.x_test])[:, 0, 0, 0])
    assert all_values == sorted([i * 20 for i in range(12)] + [250])


def test_image_folder_rgba_and_image_size(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:2, :, 3] = 255  # top half opaque white, bottom half transparent white
    for c in ("a", "b"):
        _save(tmp_path / c / "p.png", rgba, mode="RGBA")
    d = data.load_images(tmp_path)
    assert d.image_shape == (4, 4, 3)
    assert (d.x_train[:, :2] == 255).all() and (d.x_train[:, 2:] == 0).all()
    assert data.load_images(tmp_path, image_size=(2, 3)).image_shape == (2, 3, 3)
    assert data.load_images(tmp_path, image_size=5).image_shape == (5, 5, 3)


def test_image_folder_tie_goes_to_larger_area(tmp_path):
    _save(tmp_path / "a.png", np.zeros((4, 4)))
    _save(tmp_path / "b.png", np.zeros((6, 5)))
    assert data.load_images(tmp_path).image_shape == (6, 5, 1)


def test_corrupt_png_names_the_file(tmp_path):
    _save(tmp_path / "cls" / "good.png", np.zeros((8, 8)))
    bad = _save(tmp_path / "cls" / "broken.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3)))
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=r"broken\.png"):
        data.load_images(tmp_path)
    bad.write_text("not an image")
    with pytest.raises(DataError, match=r"broken\.png.*cannot be read"):
        data.load_images(tmp_path)


def test_empty_and_mixed_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(
        DataError, match=r"Dataset folder '.*empty' contains no images \(\.png, \.jpg, \.jpeg\)"
    ):
        data.load_images(tmp_path / "empty")
    _save(tmp_path / "mixed" / "loose.png", np.zeros((4, 4)))
    _save(tmp_path / "mixed" / "cls" / "in.png", np.zeros((4, 4)))
    with pytest.raises(DataError, match="loose.png.*class subfolders"):
        data.load_images(tmp_path / "mixed")


def _png_bytes(arr, mode=None, fmt="PNG", **save):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr), mode=mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def test_decode_image_bytes_alpha_on_black_then_luma():
    r, g, b, a = 200, 120, 40, 128  # alpha 128/255, about one half
    payload = _png_bytes(np.array([[[r, g, b, a]]], np.uint8), mode="RGBA")
    # Natural channels: RGB composited on black, v * alpha rounded.
    rgb = data.decode_image_bytes(payload)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 1, 3)
    composited = [int(np.floor(v * a / 255 + 0.5)) for v in (r, g, b)]
    assert rgb[0, 0].tolist() == composited == [100, 60, 20]
    # One channel: ITU-R 601-2 luma of the composited pixel, rounded ...
    gray = data.decode_image_bytes(payload, (1, 1, 1))
    assert gray.shape == (1, 1, 1)
    luma = 0.299 * composited[0] + 0.587 * composited[1] + 0.114 * composited[2]
    assert int(gray[0, 0, 0]) == int(np.floor(luma + 0.5)) == 67
    # ... within one grey level of the exact value (0.299 R + 0.587 G + 0.114 B) * alpha.
    assert abs(int(gray[0, 0, 0]) - (0.299 * r + 0.587 * g + 0.114 * b) * a / 255) <= 1.0


def test_decode_image_bytes_channels_sixteen_bit_and_size():
    gray = np.array([[0, 60], [120, 255]], np.uint8)
    three = data.decode_image_bytes(_png_bytes(gray), (2, 2, 3))
    assert three.shape == (2, 2, 3) and all((three[..., k] == gray).all() for k in range(3))
    sixteen = np.array([[0, 1000], [30000, 65535]], np.uint16)
    got = data.decode_image_bytes(_png_bytes(sixteen))
    assert got.shape == (2, 2, 1)
    assert got[..., 0].tolist() == [[0, 4], [117, 255]]  # round(v / 257)
    resized = data.decode_image_bytes(_png_bytes(np.full((10, 20, 3), 77, np.uint8)), (5, 4, 3))
    assert resized.shape == (5, 4, 3) and (resized == 77).all()


def test_decode_image_bytes_applies_exif_orientation():
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, :4] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    got = data.decode_image_bytes(_png_bytes(img, fmt="JPEG", quality=95, exif=exif.tobytes()))
    assert got.shape == (8, 4, 3)
    assert got[:3].min() > 200 and got[5:].max() < 50  # the white half is now on top


def test_decode_image_bytes_errors():
    payload = _png_bytes(np.zeros((10, 11), np.uint8))
    with pytest.raises(DataError, match=r"^'x\.png' cannot be decoded as a JPEG \(.*\); the file is corrupt or truncated\.$"):
        data.decode_image_bytes(payload, name="'x.png'", formats=("JPEG",))
    with pytest.raises(DataError, match=r"^The image cannot be read \(.*\)\. It is corrupt, truncated or not a PNG/JPEG"):
        data.decode_image_bytes(payload[:40])
    with pytest.raises(DataError, match="is 11 x 10 pixels; at most 100 pixels are accepted"):
        data.decode_image_bytes(payload, max_pixels=100)
    with pytest.raises(DataError, match="bytes of an image file. Received: str"):
        data.decode_image_bytes("x.png")
    for bad in ((8, 8), (8, 8, 2), (0, 8, 1), (8.0, 8, 1)):
        with pytest.raises(ConfigError, match=r"image_shape must be None or \(height, width, channels\)"):
            data.decode_image_bytes(payload, bad)


def test_split_folders_must_agree_on_labels(tmp_path):
    _save(tmp_path / "train" / "cls" / "a.png", np.zeros((4, 4)))
    _save(tmp_path / "test" / "b.png", np.zeros((4, 4)))
    with pytest.raises(DataError, match="class subfolders in both splits"):
        data.load_images(tmp_path)


# ------------------------------------------------------------------------------------------
# Spec resolution and TFDS
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["no_such_dataset_xyz", "missing/dir/data.npz", "", None, 3])
def test_unknown_spec(spec):
    with pytest.raises(DataError, match="mnist-10k"):
        data.load_images(spec)


def test_bad_image_size_is_a_config_error():
    with pytest.raises(ConfigError, match="image_size"):
        data.load_images("mnist-10k", image_size=(0, 3))


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_mock(name, shape, tfds_prepared_dir, monkeypatch):
    """A dataset prepared in the TFDS data_dir loads without touching the network."""
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_probe(*args):
        raise AssertionError("a prepared dataset must not probe the network")

    monkeypatch.setattr(data.tfds_source, "_probe_url", no_probe)
    with tfds.testing.mock_data(num_examples=6, data_dir=tfds_prepared_dir):
        d = data.load_images(name)
    assert d.name == name
    assert d.image_shape == shape
    assert d.x_train.dtype == np.uint8 and d.x_train.shape == (6, *shape) and d.x_test.shape == (6, *shape)
    assert d.y_train.dtype == np.int32 and d.y_train.shape == (6,)
    assert d.num_classes == 10 and len(d.class_names) == 10
    x, y = next(iter(d.pipeline("train", batch_size=4, with_labels=True)))
    assert x.shape == (4, *shape) and x.dtype.name == "float32" and y.dtype.name == "int32"
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0


@pytest.fixture
def tfds_empty_data_dir(tmp_path, monkeypatch):
    """TFDS's default data_dir pointed at an empty tmp folder (nothing prepared), as TFDS_DATA_DIR would."""
    tfds = pytest.importorskip("tensorflow_datasets")
    root = tmp_path / "tfds"
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(root))
    return root


def _files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_tfds_unreachable_fails_at_once_with_one_line_and_leaves_nothing(tfds_empty_data_dir, monkeypatch, capsys):
    """Without network, a TFDS name that is not prepared is refused after one bounded probe: TFDS's
    download (which retries each file for minutes and floods stderr) never starts."""
    import urllib.error
    import urllib.request

    import tensorflow_datasets as tfds

    from vae_keras.cli import main

    probes = []

    def unreachable(request, timeout=None, **kwargs):
        probes.append(timeout)
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    def download(self, *args, **kwargs):
        pytest.fail("download_and_prepare was started without network")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download)
    with pytest.raises(DataError) as err:
        data.load_images("mnist")
    message = str(err.value)
    assert "\n" not in message
    for part in ("'mnist'", str(tfds_empty_data_dir), "Name or service not known", "TFDS_DATA_DIR",
                 "IDX folder", ".npz", "mnist-10k"):
        assert part in message, part
    assert probes and all(t is not None and t <= 10 for t in probes)  # bounded, never TFDS's retry loop
    assert _files_under(tfds_empty_data_dir) == []

    capsys.readouterr()
    assert main(["train", "--dataset", "fashion_mnist", "--epochs", "1", "--out", str(tfds_empty_data_dir.parent / "m")]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "'fashion_mnist' is not prepared" in err_lines[0], err_lines
    assert _files_under(tfds_empty_data_dir) == []


def test_tfds_failed_download_removes_its_partial_files(tfds_empty_data_dir, monkeypatch):
    """A download that starts and fails leaves no *.tmp.* files or incomplete.* folders behind;
    what was in the data_dir before stays."""
    import tensorflow_datasets as tfds

    kept = tfds_empty_data_dir / "downloads" / "other.tar.gz.tmp.0123"  # not ours: existed before
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"someone else's")

    def partial_download(self, *args, **kwargs):
        dl = tfds_empty_data_dir / "downloads" / "mnist"
        dl.mkdir(parents=True)
        (dl / "cvdf-datasets_mnist_train-images.gz.tmp.3a8bd9fd").write_bytes(b"half")
        incomplete = tfds_empty_data_dir / "mnist" / "incomplete.SBYWFI_3.0.1"
        incomplete.mkdir(parents=True)
        (incomplete / "mnist-train.tfrecord").write_bytes(b"half")
        raise OSError("Connection reset by peer")

    monkeypatch.setattr(data.tfds_source, "_probe_url", lambda *args: None)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", partial_download)
    with pytest.raises(DataError, match=r"could not download or prepare 'mnist' into data_dir .*Connection reset.*mnist-10k"):
        data.load_images("mnist")
    assert _files_under(tfds_empty_data_dir) == ["downloads", "downloads/other.tar.gz.tmp.0123"]


# ------------------------------------------------------------------------------------------
# Pipelines, binarize, subset
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(mnist):
    return mnist.subset(n_train=300, n_test=70)


def test_subset_takes_the_first_images(mnist, small):
    np.testing.assert_array_equal(small.x_train, mnist.x_train[:300])
    np.testing.assert_array_equal(small.y_test, mnist.y_test[:70])
    assert small.class_names == mnist.class_names
    assert len(mnist.subset(n_test=5).x_train) == 8000
    with pytest.raises(ConfigError):
        mnist.subset(n_train=0)


def test_pipeline_batches(small):
    shapes = [tuple(b.shape) for b in small.pipeline("test", batch_size=32).as_numpy_iterator()]
    assert shapes == [(32, 28, 28, 1), (32, 28, 28, 1), (6, 28, 28, 1)]
    shapes = [tuple(b.shape) for b in small.pipeline("test", batch_size=32, drop_remainder=True)]
    assert shapes == [(32, 28, 28, 1)] * 2
    x, y = collect(small.pipeline("test", batch_size=32, with_labels=True))
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(y, small.y_test)  # test split: not shuffled by default
    np.testing.assert_array_equal(x, small.x_test / np.float32(255))


def test_pipeline_shuffle_is_deterministic_per_seed(small):
    def first_epoch(seed):
        return collect(small.pipeline("train", batch_size=64, seed=seed, with_labels=True))

    x1, y1 = first_epoch(7)
    x2, y2 = first_epoch(7)
    x3, _ = first_epoch(8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert not np.array_equal(x1, small.x_train / np.float32(255))  # train is shuffled by default
    # A shuffled epoch is a permutation of the split, labels still attached to their images.
    key = lambda x: x.reshape(len(x), -1).sum(1)  # noqa: E731
    np.testing.assert_allclose(np.sort(key(x1)), np.sort(key(small.x_train / np.float32(255))), rtol=1e-5)
    label_of = {img.tobytes(): lab for img, lab in zip(small.x_train, small.y_train, strict=True)}
    assert all(
        label_of[np.rint(img * 255).astype(np.uint8).tobytes()] == lab
        for img, lab in zip(x1, y1, strict=True)
    )
    # Reshuffled in the next epoch, and the sequence of epochs is the same for the same seed.
    ds_a, ds_b = (small.pipeline("train", batch_size=300, seed=7) for _ in range(2))
    a1, a2, b1, b2 = collect(ds_a), collect(ds_a), collect(ds_b), collect(ds_b)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)


@pytest.mark.parametrize("n, batch, drop, sizes", [(10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]),
                                                  (8, 4, False, [4, 4]), (3, 4, False, [3]), (3, 4, True, [])])
def test_shuffled_batches_cover_every_image_once_per_epoch(n, batch, drop, sizes):
    from vae_keras.data import ImageData

    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    d = ImageData(name="t", x_train=x, y_train=None, x_test=x, y_test=None)
    ds = d.pipeline("train", batch_size=batch, seed=0, drop_remainder=drop)
    assert int(ds.cardinality()) == len(sizes)  # known up front, as Keras's progress bar needs
    for _ in range(3):
        batches = [np.rint(b.numpy().ravel() * 255).astype(int) for b in ds]
        assert [len(b) for b in batches] == sizes
        seen = np.concatenate(batches) if batches else np.array([], int)
        assert len(set(seen.tolist())) == len(seen)  # no image twice in an epoch
        if not drop:
            assert sorted(seen.tolist()) == list(range(n))


def test_pipeline_binarize(mnist):
    d = mnist.subset(2000, 500)
    a = collect(d.pipeline("train", batch_size=500, shuffle=False, binarize_seed=3))
    b = collect(d.pipeline("train", batch_size=500, shuffle=False, binarize_seed=3))
    c = collect(d.pipeline("train", batch_size=500, shuffle=False, binarize_seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) == {0.0, 1.0} and a.dtype == np.float32
    assert abs(a.mean() - d.x_train.mean() / 255) < 0.005
    # Pixels that are 0 stay 0, pixels that are 255 stay 1.
    assert (a[d.x_train == 0] == 0).all() and (a[d.x_train == 255] == 1).all()
    # The same 0/1 images in every epoch of a shuffled pipeline.
    ds = d.pipeline("train", batch_size=2000, seed=1, binarize_seed=3)
    e1, e2 = (next(iter(ds)).numpy() for _ in range(2))
    assert sorted(e1.reshape(2000, -1).sum(1).tolist()) == sorted(e2.reshape(2000, -1).sum(1).tolist())


def test_binarize_and_to_float_functions():
    x = np.random.default_rng(0).integers(0, 256, (50, 10, 10), dtype=np.uint8)
    b = data.binarize(x, seed=5)
    assert b.dtype == np.float32 and b.shape == x.shape and set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_array_equal(b, data.binarize(x, seed=5))
    np.testing.assert_array_equal(b, data.binarize(data.to_float(x), seed=5))
    assert abs(b.mean() - x.mean() / 255) < 0.02
    np.testing.assert_array_equal(data.to_float(np.array([0, 51, 255], np.uint8)), np.float32([0, 0.2, 1]))
    with pytest.raises(DataError):
        data.to_float(np.array([0.5, np.nan]))
    with pytest.raises(DataError):
        data.binarize(np.array([2.0]), seed=0)


def test_pipeline_argument_errors(small):
    unlabelled = data.ImageData.from_arrays(np.zeros((10, 2, 2), np.uint8))
    with pytest.raises(DataError, match="no labels"):
        unlabelled.pipeline(with_labels=True)
    with pytest.raises(ConfigError, match="split"):
        small.pipeline("validation")
    with pytest.raises(ConfigError, match="batch_size"):
        small.pipeline(batch_size=0)


def test_image_data_checks_its_invariants():
    with pytest.raises(DataError, match="from_arrays"):
        data.ImageData("x", np.zeros((2, 3, 3), np.float64), None, np.zeros((1, 3, 3, 1), np.uint8), None)
    with pytest.raises(DataError, match="both splits or for neither"):
        data.ImageData(
            "x",
            np.zeros((2, 3, 3, 1), np.uint8),
            np.zeros(2, np.int32),
            np.zeros((1, 3, 3, 1), np.uint8),
            None,
        )

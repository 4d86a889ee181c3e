"""The dsprites dataset: a procedural renderer of the dSprites factor grid, its seeded subset, its factors.

The renderer is checked against the shapes' mathematical definitions (an independent float64 version),
and each factor against what its name says: x and y move the centroid, scale the area, orientation
turns the ellipse's principal axis and the heart's centre of mass, shape changes the pixels.
"""

import os

import numpy as np
import pytest

from vae_keras import data
from vae_keras.data import dsprites
from vae_keras.errors import DataError

SIZES = (3, 6, 40, 32, 32)


@pytest.fixture(scope="module")
def sprites():
    return data.load_images("dsprites")


def grid_of(**fixed):
    """Factor rows [N, 5]: the factors named in ``fixed`` take the given values (a list varies, in order)."""
    names = ("shape", "scale", "orientation", "x", "y")
    varying = [k for k, v in fixed.items() if np.ndim(v)]
    n = len(fixed[varying[0]]) if varying else 1
    rows = np.zeros((n, 5), np.int64)
    for i, name in enumerate(names):
        rows[:, i] = fixed.get(name, 0)
    return rows


def centroid(img):
    """(column, row) of an image's white pixels' centres."""
    rows, cols = np.nonzero(img[..., 0])
    return cols.mean() + 0.5, rows.mean() + 0.5


def reference_margin(factors, pad=0):
    """Independent float64 version of the documented definition: > 0 inside the sprite, < 0 outside,
    for every pixel centre; [N, 64, 64], or [N, 64 + 2 pad, 64 + 2 pad] for a canvas ``pad`` pixels
    larger on every side than the frame."""
    r = 10.0
    s = r * (0.5 + 0.1 * factors[:, 1])[:, None, None]
    theta = (2 * np.pi * factors[:, 2] / 40)[:, None, None]
    cx = (r + factors[:, 3] / 31 * (64 - 2 * r))[:, None, None]
    cy = (r + factors[:, 4] / 31 * (64 - 2 * r))[:, None, None]
    centres = np.arange(-pad, 64 + pad) + 0.5
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    dx, dy = (cols - cx) / s, -(rows - cy) / s  # y up
    u = dx * np.cos(theta) + dy * np.sin(theta)  # rotate the pixel by -theta
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    square = 1 / np.sqrt(2) - np.maximum(np.abs(u), np.abs(v))
    ellipse = 1 - (u**2 + 4 * v**2)
    hx, hy = 1.25 * u, 1.25 * v + 0.25
    heart = -((hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3)
    shape = factors[:, 0][:, None, None]
    return np.where(shape == 0, square, np.where(shape == 1, ellipse, heart))


# ------------------------------------------------------------------------------------------------
# The renderer
# ------------------------------------------------------------------------------------------------


def test_renderer_matches_the_documented_shapes_away_from_their_boundary():
    factors = dsprites.GRID.sample_factors(400, 3)
    x = dsprites.render(factors)
    assert x.shape == (400, 64, 64, 1) and x.dtype == np.float32
    assert set(np.unique(x)) == {0.0, 1.0}
    margin = reference_margin(factors)
    clear = np.abs(margin) > 1e-4  # pixel centres on a boundary are ties between float32 and float64
    assert clear.mean() > 0.999
    np.testing.assert_array_equal(x[..., 0][clear], (margin > 0)[clear].astype(np.float32))


def test_renderer_is_deterministic_bit_for_bit_whatever_else_is_rendered_with_it():
    factors = dsprites.GRID.sample_factors(300, 1)
    x = dsprites.render(factors)
    np.testing.assert_array_equal(dsprites.render(factors), x)
    order = np.random.default_rng(2).permutation(300)
    np.testing.assert_array_equal(dsprites.render(factors[order]), x[order])
    for i in (0, 17, 299):
        np.testing.assert_array_equal(dsprites.render(factors[i:i + 1]), x[i:i + 1])
    assert dsprites.render(np.zeros((0, 5), int)).shape == (0, 64, 64, 1)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_the_centroid_follows_x_and_y_monotonically(axis):
    col = 3 if axis == "x" else 4
    for shape in range(3):
        for orientation in (0, 7):
            f = grid_of(shape=shape, scale=5, orientation=orientation, x=15, y=15)
            f = np.repeat(f, 32, axis=0)
            f[:, col] = np.arange(32)
            c = np.array([centroid(img) for img in dsprites.render(f)])
            moving, still = (c[:, 0], c[:, 1]) if axis == "x" else (c[:, 1], c[:, 0])
            assert np.all(np.diff(moving) > 0), (shape, orientation, moving)
            assert np.ptp(still) < 0.5, (shape, orientation, still)
            # the sprite's centre goes from R to 64 - R: the centroid moves by 44 px (within a pixel)
            assert abs((moving[-1] - moving[0]) - 44) < 1.0, moving


def test_the_area_follows_scale_as_the_closed_form_area():
    """Area = (s R)^2 * the shape's area in its unit frame: 2 (square), pi / 2 (ellipse), the heart's by
    counting a fine grid's points that satisfy its implicit inequality."""
    g = np.linspace(-1, 1, 2001)
    u, v = np.meshgrid(g, g)
    hx, hy = 1.25 * u, 1.25 * v + 0.25
    heart = ((hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0).sum() * (g[1] - g[0]) ** 2
    unit_area = {0: 2.0, 1: np.pi / 2, 2: heart}
    for shape in range(3):
        for orientation in (0, 3, 11):
            f = np.repeat(grid_of(shape=shape, orientation=orientation, x=15, y=15), 6, axis=0)
            f[:, 1] = np.arange(6)
            area = dsprites.render(f).sum(axis=(1, 2, 3))
            assert np.all(np.diff(area) > 0), (shape, orientation, area)
            expected = unit_area[shape] * (10 * dsprites.SCALES) ** 2
            # counting pixel centres errs by less than a lattice bound: (a - 1)^2 <= count <= (a + 1)^2 for a square of side a
            assert np.all(np.abs(area - expected) <= 2 * np.sqrt(expected) + 1), (shape, orientation, area, expected)


def test_orientation_turns_the_ellipse_principal_axis_and_the_heart_by_the_angle_counter_clockwise():
    angles = 2 * np.pi * np.arange(40) / 40
    # ellipse: the principal axis of its pixels (x right, y up) is at the orientation, modulo pi
    f = np.repeat(grid_of(shape=1, scale=5, x=15, y=15), 40, axis=0)
    f[:, 2] = np.arange(40)
    for theta, img in zip(angles, dsprites.render(f)):
        rows, cols = np.nonzero(img[..., 0])
        x, y = cols - cols.mean(), -(rows - rows.mean())
        axis = 0.5 * np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean())
        err = (axis - theta + np.pi / 2) % np.pi - np.pi / 2
        assert abs(err) < np.radians(2.5), (np.degrees(theta), np.degrees(axis))
    # heart (no symmetry): image k is the orientation-0 heart turned counter-clockwise by theta_k, the best
    # match among turns by multiples of 45 degrees, and closer than the turn by -theta_k (the other direction)
    f[:, 0] = 2
    hearts = dsprites.render(f)[..., 0]
    centre = 10 + 15 / 31 * 44
    turned = np.stack([rotate(hearts[0], theta, centre, centre) for theta in angles])
    iou = (turned[:, None] * hearts[None]).sum((2, 3)) / ((turned[:, None] + hearts[None]) > 0).sum((2, 3))
    every_45 = np.arange(0, 40, 5)
    np.testing.assert_array_equal(iou[np.ix_(every_45, every_45)].argmax(axis=0), np.arange(8))
    k = np.setdiff1d(np.arange(40), [0, 20])
    assert np.all(iou[k, k] > iou[-k % 40, k]), np.round(iou[k, k] - iou[-k % 40, k], 2)
    assert iou[np.arange(40), np.arange(40)].min() > 0.8


def rotate(img, angle, cx, cy):
    """``img`` [64, 64] turned counter-clockwise (as displayed) by ``angle`` about pixel point (cx, cy), nearest neighbour."""
    rows, cols = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5, indexing="ij")
    dx, dy = cols - cx, -(rows - cy)
    sx, sy = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
    c, r = np.floor(cx + sx).astype(int), np.floor(cy - sy).astype(int)
    ok = (r >= 0) & (r < 64) & (c >= 0) & (c < 64)
    out = np.zeros_like(img)
    out[ok] = img[r[ok], c[ok]]
    return out


def test_shape_changes_the_pixels_and_every_sprite_stays_inside_the_frame():
    f = grid_of(shape=[0, 1, 2], scale=5, orientation=4, x=20, y=9)
    x = dsprites.render(f)
    assert not np.array_equal(x[0], x[1]) and not np.array_equal(x[1], x[2]) and not np.array_equal(x[0], x[2])
    # at the corners and edges of the position grid, at every orientation, no part of a sprite of the largest
    # scale lies outside the frame (on a canvas 8 px larger on each side), and the frame shows all of it
    f = grid_of(shape=np.repeat([0, 1, 2], 40 * 4), scale=5, orientation=np.tile(np.arange(40), 12),
                x=np.tile(np.repeat([0, 31, 0, 31], 40), 3), y=np.tile(np.repeat([0, 0, 31, 31], 40), 3))
    margin = reference_margin(f, pad=8)
    outside = np.ones(margin.shape[1:], bool)
    outside[8:-8, 8:-8] = False
    assert margin[:, outside].max() < 0
    inside = margin[:, 8:-8, 8:-8]
    x = dsprites.render(f)[..., 0]
    clear = np.abs(inside) > 1e-4
    np.testing.assert_array_equal(x[clear], (inside > 0)[clear])
    assert np.all(x.sum(axis=(1, 2)) > 50)


def test_render_and_sample_factors_refuse_bad_input_with_the_factor_named():
    with pytest.raises(DataError, match=r"factors\[1, 4\] = 32 is not an index of factor 'y'.*y 0\.\.31"):
        dsprites.render([[0, 0, 0, 0, 0], [0, 0, 0, 0, 32]])
    with pytest.raises(DataError, match=r"integer array \[N, 5\].*shape, scale, orientation, x, y"):
        dsprites.render(np.zeros((2, 4), int))
    with pytest.raises(DataError, match="integer array"):
        dsprites.render(np.zeros((2, 5), float))
    with pytest.raises(DataError, match="random_state"):
        dsprites.GRID.sample_factors(3, "seed")
    with pytest.raises(DataError, match="n, an integer >= 0"):
        dsprites.GRID.sample_factors(-1, 0)


def test_sample_factors_is_uniform_over_the_full_grid_and_seeded():
    grid = dsprites.GRID
    a = grid.sample_factors(30000, 5)
    assert a.shape == (30000, 5) and a.dtype == np.int64
    np.testing.assert_array_equal(a, grid.sample_factors(30000, np.random.default_rng(5)))
    rs = grid.sample_factors(10, np.random.RandomState(5))
    assert rs.shape == (10, 5) and np.all(rs < SIZES)
    for col, size in enumerate(SIZES):
        counts = np.bincount(a[:, col], minlength=size)
        assert len(counts) == size and counts.min() > 0
        expected = len(a) / size  # each count is Binomial(n, 1/size): within 5 standard deviations
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (col, counts)
    flat = grid.flat_index(a)
    assert flat.max() < 737280 and len(np.unique(flat)) > 29000  # the full grid, not a small subset
    np.testing.assert_array_equal(grid.factors_of(flat), a)


# ------------------------------------------------------------------------------------------------
# The dataset: the seeded subset, labels, interface
# ------------------------------------------------------------------------------------------------


def test_the_dataset_interface_and_its_seeded_subset(sprites):
    d = sprites
    assert isinstance(d, data.FactorImageData) and isinstance(d, data.ImageData)
    assert d.factor_names == ["shape", "scale", "orientation", "x", "y"]
    assert d.factor_sizes == SIZES
    assert d.image_shape == (64, 64, 1) and len(d.x_train) == 20000 and len(d.x_test) == 5000
    assert d.class_names == ("square", "ellipse", "heart") and d.num_classes == 3
    for f, x, y in ((d.factors_train, d.x_train, d.y_train), (d.factors_test, d.x_test, d.y_test)):
        assert f.shape == (len(x), 5) and f.dtype == np.int64
        np.testing.assert_array_equal(y, f[:, 0])  # the class label is the shape
    assert set(np.unique(d.x_train[:500])) == {0, 255}
    # seeded: the same combinations every time, disjoint between the splits, spread over the grid
    again_train, again_test = dsprites.subset_factors()
    np.testing.assert_array_equal(again_train, d.factors_train)
    np.testing.assert_array_equal(again_test, d.factors_test)
    flat = np.concatenate([dsprites.GRID.flat_index(d.factors_train), dsprites.GRID.flat_index(d.factors_test)])
    assert len(np.unique(flat)) == 25000
    assert np.all(np.bincount(d.factors_train[:, 2], minlength=40) > 300)
    # the images are the renderer's, bit for bit
    np.testing.assert_array_equal(d.render(d.factors_train[:300]), data.to_float(d.x_train[:300]))
    np.testing.assert_array_equal(d.render(d.factors_test[-300:]), data.to_float(d.x_test[-300:]))
    batch = next(iter(d.pipeline("train", batch_size=32, with_labels=True)))
    assert batch[0].shape == (32, 64, 64, 1) and set(np.unique(batch[0].numpy())) <= {0.0, 1.0}
    assert d.sample_factors(4, 0).shape == (4, 5)
    assert "factors={'shape': 3" in repr(d)


def test_factors_follow_their_images_through_subset_and_validation_split(sprites):
    small = sprites.subset(300, 40)
    assert isinstance(small, data.FactorImageData)
    np.testing.assert_array_equal(small.factors_train, sprites.factors_train[:300])
    np.testing.assert_array_equal(small.factors_test, sprites.factors_test[:40])
    split = small.hold_out_validation(0.25, seed=3)
    assert len(split.factors_train) == len(split.x_train) == 225 and len(split.factors_test) == 75
    np.testing.assert_array_equal(split.render(split.factors_test), data.to_float(split.x_test))
    np.testing.assert_array_equal(split.render(split.factors_train), data.to_float(split.x_train))
    np.testing.assert_array_equal(split.y_test, split.factors_test[:, 0])
    with pytest.raises(DataError, match="factors_train has 2 rows but x_train has 300"):
        data.FactorImageData(small.name, small.x_train, small.y_train, small.x_test, small.y_test,
                             small.class_names, factors_train=small.factors_train[:2],
                             factors_test=small.factors_test, grid=small.grid)


def test_the_spec_any_case_other_image_sizes_refused_and_a_folder_named_dsprites(tmp_path, monkeypatch):
    monkeypatch.setattr(dsprites, "TRAIN_SIZE", 30)  # a small subset: only the rules are tested here
    monkeypatch.setattr(dsprites, "TEST_SIZE", 10)
    d = data.load_images(" DSprites ", image_size=64)  # what the dashboard asks for a 64x64 model
    assert d.name == "dsprites" and len(d.x_train) == 30 and d.image_shape == (64, 64, 1)
    with pytest.raises(DataError, match=r"rendered at 64x64.*image_size=\(28, 28\)"):
        data.load_images("dsprites", image_size=28)
    folder = tmp_path / "dsprites"
    folder.mkdir()
    np.savez(tmp_path / "dsprites" / "x.npz", x_train=np.zeros((4, 8, 8), np.uint8))
    monkeypatch.chdir(tmp_path)
    assert data.load_images(os.path.join(".", "dsprites", "x.npz")).image_shape == (8, 8, 1)


def test_a_conditional_model_trains_on_dsprites_and_the_command_line_samples_a_heart(sprites, tmp_path, capsys):
    """train() on a small part of the subset (the CLI's `--dataset dsprites` loads the same data), then the
    card names the dataset and the shapes, `sample --label heart` uses them, `evaluate` reloads the dataset."""
    import json

    from vae_keras import exported
    from vae_keras.cli import main
    from vae_keras.training import TrainConfig, train

    config = TrainConfig(dataset="dsprites", conditional=True, epochs=2, hidden=(32,), latent_dim=4, batch_size=128,
                         kl_warmup_epochs=0, eval_iw_samples=2, out=str(tmp_path), verbose=0)
    result = train(config, data=sprites.subset(1024, 200))
    losses = [row["loss"] for row in result["history"]]
    assert losses[1] < losses[0], losses
    path = result["export_path"]
    card = exported.read_card(path)
    assert card["dataset"] == "dsprites" and card["image_shape"] == [64, 64, 1] and card["test_binarized"] is True
    assert card["class_names"] == ["square", "ellipse", "heart"] and card["num_classes"] == 3
    grid = tmp_path / "hearts.png"
    assert main(["sample", path, "--label", "heart", "--num", "4", "--output", str(grid)]) == 0
    assert grid.exists()
    capsys.readouterr()
    assert main(["evaluate", path, "--iw-samples", "1", "--num-images", "300", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["dataset"] == "dsprites" and scored["num_images"] == 300 and np.isfinite(scored["nll"])


def test_the_readme_picture_is_the_renderer_s():
    """docs/dsprites.png is what `python -m benchmarks.dsprites_render --picture` draws today."""
    import sys

    from PIL import Image

    from conftest import REPO_ROOT

    if REPO_ROOT not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
        sys.path.insert(0, REPO_ROOT)
    from benchmarks import dsprites_render

    with Image.open(os.path.join(REPO_ROOT, "docs", "dsprites.png")) as img:
        committed = np.asarray(img)
    np.testing.assert_array_equal(committed, dsprites_render.picture()[..., 0])

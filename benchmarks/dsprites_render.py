"""How fast the dsprites renderer is, and the README's picture of the dataset.

    python -m benchmarks.dsprites_render                         # images/s of render() and of loading the subset
    python -m benchmarks.dsprites_render --picture docs/dsprites.png --overwrite

``render`` is timed on ``--images`` combinations drawn uniformly from the full grid (float32 images, what
``data.render`` returns), ``--repeats`` times; the median and the best run are printed. The load time is
that of ``load_images("dsprites")`` (20,000 + 5,000 uint8 images). Run it on an otherwise idle machine:
other processes on the cores slow it down.
"""

import argparse
import statistics
import time

import numpy as np

# One row per factor, each varying that factor alone from a heart of scale 1 at the centre (columns:
# 6 values), then two rows of combinations drawn from the full grid.
PICTURE_COLUMNS = 6


def picture_factors():
    """The factor rows [42, 5] of the README picture (see PICTURE_COLUMNS)."""
    from vae_keras.data import dsprites

    base = np.array([2, 5, 0, 15, 15])
    steps = {
        0: [0, 1, 2, 0, 1, 2],  # shape: square, ellipse, heart, then the three turned by 36 degrees
        1: list(range(6)),  # scale 0.5 .. 1
        2: [0, 3, 6, 9, 12, 15],  # orientation 0 .. 135 degrees, counter-clockwise
        3: [0, 6, 12, 19, 25, 31],  # x, left to right
        4: [0, 6, 12, 19, 25, 31],  # y, top to bottom
    }
    rows = []
    for col, values in steps.items():
        f = np.repeat(base[None], PICTURE_COLUMNS, axis=0)
        f[:, col] = values
        if col == 0:
            f[3:, 2] = 4
        rows.append(f)
    rows.append(dsprites.GRID.sample_factors(2 * PICTURE_COLUMNS, 0))
    return np.concatenate(rows)


def picture():
    """The README picture: uint8 [H, W, 1], tiles upscaled 2x with grey padding."""
    from vae_keras import images
    from vae_keras.data import dsprites

    grid = images.make_grid(dsprites.render(picture_factors()), ncol=PICTURE_COLUMNS, padding=2, pad_value=128)
    return images.upscale(grid, 2)


def measure(n_images, repeats, seed=0):
    from vae_keras.data import dsprites, load_images

    factors = dsprites.GRID.sample_factors(n_images, seed)
    dsprites.render(factors[:100])  # warm up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        dsprites.render(factors)
        seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    load_images("dsprites")
    load = time.perf_counter() - start
    return {"images": n_images, "median_images_per_s": n_images / statistics.median(seconds),
            "best_images_per_s": n_images / min(seconds), "load_seconds": load}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--picture", help="write the README picture to this PNG instead of measuring")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --picture file")
    args = p.parse_args(argv)
    if args.picture:
        from vae_keras import images

        images.save_png(args.picture, picture(), overwrite=args.overwrite)
        print(f"Wrote {args.picture}")
        return 0
    r = measure(args.images, args.repeats)
    print(f"render: {r['median_images_per_s']:,.0f} images/s median, {r['best_images_per_s']:,.0f} best "
          f"({r['images']:,} float32 64x64 images, {args.repeats} runs); "
          f"load_images('dsprites'): {r['load_seconds']:.2f} s for 25,000 images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

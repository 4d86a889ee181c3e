"""Time and memory of `vae_keras.evaluation.evaluate` on an exported model, in a fresh process.

Loads ``assets.extra/model.keras`` of an export, binarizes the test split once (seed 0, as
`vae_keras.training.test_images` does), and runs ``evaluate(model, x, iw_samples=K)`` with its
default batch size, reporting JSON on stdout: seconds, NLL, the RSS before the evaluation, the
peak RSS sampled during it, and the process's lifetime peak (``ru_maxrss``).

    python benchmarks/evaltime.py saved_models/NAME/VERSION --dataset SPEC [--images 10000] [--k 1000]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(path, dataset, images=10_000, k=1000):
    import keras

    import vae_keras  # noqa: F401  (registers the classes model.keras needs)
    from benchmarks.harness import RssSampler, current_rss_mb, peak_rss_mb, resolve_dataset
    from vae_keras import data as data_lib
    from vae_keras import evaluation
    from vae_keras.training import test_images

    model = keras.saving.load_model(os.path.join(path, "assets.extra", "model.keras"))
    data = data_lib.load_images(resolve_dataset(dataset))
    x = test_images(data, binarized=True)[:images]
    del data
    rss_before, peak_before = current_rss_mb(), peak_rss_mb()
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        result = evaluation.evaluate(model, x, iw_samples=k)
        seconds = time.perf_counter() - t0
    return {
        "path": os.path.abspath(path), "dataset": dataset, "images": int(len(x)), "iw_samples": k,
        "batch_size": 100, "seconds": round(seconds, 1), "nll": result["nll"], "elbo": result["elbo"],
        "active_units": result["active_units"], "rss_before_mb": round(rss_before, 1),
        "peak_rss_during_mb": round(sampler.peak, 1), "ru_maxrss_before_mb": round(peak_before, 1),
        "ru_maxrss_mb": round(peak_rss_mb(), 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="an exported version folder")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=1000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.path, args.dataset, args.images, args.k)))


if __name__ == "__main__":
    main()

"""Wall-clock and CPU time of every disentanglement metric on dsprites with a real encoder.

    python -m benchmarks.metric_times                     # 10,000 images, every metric, forest and lasso DCI
    python -m benchmarks.metric_times --gbt               # also DCI with boosted trees (minutes)

The encoder is the conv64 network of `vae-keras train --dataset dsprites --model conv64 --latent-dim 10`
(freshly initialised: a trained encoder costs the same per image; its codes are divided by their
standard deviation over 1,000 images, so that no code falls under the FactorVAE score's pruning
threshold 0.05 and that metric does its whole work, as it would for a trained model). Each metric is called on its own, as `vae_keras.disentanglement`'s
functions, with disentanglement_lib's sizes (``--samples`` training images / votes / samples, half of
it for testing), seed 0; the time includes rendering and encoding the images it needs. The FactorVAE and
beta-VAE scores draw their votes from the package's default pool of 10,000 images encoded once;
``--fresh`` also times them with fresh images for every vote (disentanglement_lib's way; minutes). Prints one
JSON line per metric and a final JSON line with all of them, machine info and load averages.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.metric_times", description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--votes", type=int, help="training votes / samples of the FactorVAE and beta-VAE scores (default "
                                             "--samples; each is a group of 64 images, drawn from a pool of 10,000 "
                                             "images, or with --fresh rendered anew: 970,000 and 1,920,000 images)")
    p.add_argument("--fresh", action="store_true", help="also the FactorVAE and beta-VAE scores with fresh images for "
                                                        "every vote (pool_size=None; minutes)")
    p.add_argument("--gbt", action="store_true", help="also DCI with gradient boosted trees (disentanglement_lib's; minutes)")
    p.add_argument("--metrics", default="mig,sap,dci_forest,dci_lasso,factorvae_score,beta_vae_score")
    args = p.parse_args(argv)

    from benchmarks import harness
    from vae_keras import disentanglement as dis
    from vae_keras import load_images
    from vae_keras.models import build_vae

    data = load_images("dsprites")
    model = build_vae(data.image_shape, latent_dim=10, network="conv64")
    encode = dis.representation_from_model(model)
    probe = encode(data.render(data.sample_factors(1000, np.random.RandomState(1))))
    scale = probe.std(axis=0)

    def represent(images):
        return encode(images) / scale

    n, half = args.samples, args.samples // 2
    votes = args.votes or n
    calls = {
        "mig": lambda: dis.mig(represent, data, num_train=n),
        "sap": lambda: dis.sap(represent, data, num_train=n, num_test=half),
        "dci_forest": lambda: dis.dci(represent, data, num_train=n, num_test=half, predictor="forest"),
        "dci_lasso": lambda: dis.dci(represent, data, num_train=n, num_test=half, predictor="lasso"),
        "dci_gbt": lambda: dis.dci(represent, data, num_train=n, num_test=half, predictor="gbt"),
        "factorvae_score": lambda: dis.factorvae_score(represent, data, num_train=votes, num_eval=votes // 2),
        "beta_vae_score": lambda: dis.beta_vae_score(represent, data, num_train=votes, num_eval=votes // 2),
        "factorvae_score_fresh": lambda: dis.factorvae_score(represent, data, num_train=votes, num_eval=votes // 2,
                                                             num_variance_estimate=n, pool_size=None),
        "beta_vae_score_fresh": lambda: dis.beta_vae_score(represent, data, num_train=votes, num_eval=votes // 2,
                                                           pool_size=None),
    }
    names = (args.metrics.split(",") + (["dci_gbt"] if args.gbt else [])
             + (["factorvae_score_fresh", "beta_vae_score_fresh"] if args.fresh else []))
    encode_images = 5000
    _, enc_wall, enc_cpu = timed(lambda: represent(data.render(data.sample_factors(encode_images, np.random.RandomState(0)))))
    result = {"samples": n, "votes": votes, "pool_size": dis.POOL_SIZE, "machine": harness.machine_description(), "forest_n_jobs": dis.forest_n_jobs(),
              "render_and_encode_5000_images": {"wall_s": enc_wall, "cpu_s": enc_cpu}, "metrics": {}}
    print(json.dumps(result["render_and_encode_5000_images"]), flush=True)
    for name in names:
        load = harness.load_average()
        _, wall, cpu = timed(calls[name])
        result["metrics"][name] = {"wall_s": wall, "cpu_s": cpu, "load_before": load, "load_after": harness.load_average()}
        print(json.dumps({name: result["metrics"][name]}), flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

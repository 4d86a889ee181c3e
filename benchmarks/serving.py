"""SavedModel serving throughput and batch-1 latency of an exported VAE's ``serving_default``.

Runs in its own process and never imports vae_keras: it loads the export with
``tf.saved_model.load`` exactly as a client of the signatures in docs/contracts.md would, and reports JSON on
stdout. The signature is called in-process (no gRPC/REST and no request serialization, which TF
Serving would add on top).

    python benchmarks/serving.py saved_models/NAME/VERSION [--batch 256] [--seconds 10]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _percentile(values, q):
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def measure(path, batch=256, seconds=10.0, latency_calls=300, warmup=5):
    import numpy as np
    import tensorflow as tf

    t0 = time.perf_counter()
    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serving_default"]
    load_seconds = time.perf_counter() - t0
    shape = fn.structured_input_signature[1]["x"].shape.as_list()[1:]
    rng = np.random.default_rng(0)
    x_batch = tf.constant((rng.random([batch] + shape) < 0.3).astype(np.float32))
    x_one = tf.constant(x_batch[:1])

    def call(x):
        out = fn(x=x)
        return out["x_mean"].numpy()

    for _ in range(warmup):
        call(x_batch)
        call(x_one)

    batch_times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(batch_times) < 5:
        t = time.perf_counter()
        call(x_batch)
        batch_times.append(time.perf_counter() - t)

    latencies = []
    for _ in range(latency_calls):
        t = time.perf_counter()
        call(x_one)
        latencies.append(time.perf_counter() - t)

    return {
        "path": os.path.abspath(path),
        "signature": "serving_default",
        "load_seconds": round(load_seconds, 2),
        "batch": batch,
        "batch_calls": len(batch_times),
        "images_per_second_median": batch / _percentile(batch_times, 50),
        "images_per_second_overall": batch * len(batch_times) / sum(batch_times),
        "batch_call_ms_median": 1000 * _percentile(batch_times, 50),
        "latency_calls": latency_calls,
        "latency_ms_median": 1000 * _percentile(latencies, 50),
        "latency_ms_p90": 1000 * _percentile(latencies, 90),
        "latency_ms_p99": 1000 * _percentile(latencies, 99),
        "vae_keras_imported": "vae_keras" in sys.modules,
        "tensorflow": tf.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="an exported version folder, e.g. saved_models/NAME/1")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0, help="time spent on batch calls")
    parser.add_argument("--latency-calls", type=int, default=300)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.path, args.batch, args.seconds, args.latency_calls)))


if __name__ == "__main__":
    main()

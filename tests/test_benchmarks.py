"""Smoke test of the benchmark harness: `python -m benchmarks.run --quick` end to end (~30 s).

It trains the three models for 2 s on mnist-10k, scores their snapshots, measures throughput,
serving and evaluation cost with tiny settings, and checks the structure of what it writes.
"""

import json
import math
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, REPO_ROOT)


def test_quick_benchmark_writes_complete_results(tmp_path):
    from benchmarks import run

    run.main(["--quick", "--output-dir", str(tmp_path)])

    assert {p.name for p in tmp_path.iterdir()} >= {"results.json", "RESULTS.md", "nll_vs_time.png"}
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["quick"] is True
    assert results["machine"]["nproc"] >= 1 and results["machine"]["tensorflow"]

    checkpoints = results["settings"]["checkpoints"]
    runs = results["datasets"]["mnist-10k"]["runs"]
    assert set(runs) == {"vae_keras", "keras_example", "burda2016"}
    for name, r in runs.items():
        assert [p["checkpoint"] for p in r["points"]] == checkpoints, name
        assert all(math.isfinite(p["nll"]) and p["nll"] > 0 for p in r["points"]), name
        # The IW bound is at least as tight as the ELBO (both estimated with the same samples).
        assert r["points"][-1]["nll"] <= -r["points"][-1]["elbo"] + 1e-3, name
        assert r["train_seconds"] <= results["settings"]["budget"] + 30, name
    # vae_keras's run is the CLI's default configuration, only the time limit set.
    assert runs["vae_keras"]["config"]["time_limit"] == results["settings"]["budget"]
    assert runs["vae_keras"]["config"]["model"] == "mlp"
    comparison = results["datasets"]["mnist-10k"]["comparison"]
    assert comparison["better_baseline"] in {"keras_example", "burda2016"}
    assert math.isfinite(comparison["margin_nats"])

    throughput = results["throughput"]["variants"]
    assert throughput["plain_keras_example"]["median"] > 0 and throughput["vae_keras"]["median"] > 0
    assert results["throughput"]["ratio_vae_keras_vs_plain"] > 0

    serving = results["serving"]
    assert serving["vae_keras_imported"] is False  # loaded as a TF Serving client would
    assert serving["images_per_second_median"] > 0 and 0 < serving["latency_ms_median"] <= serving["latency_ms_p90"]

    evaluation = results["evaluation"]
    assert evaluation["seconds"] >= 0 and evaluation["peak_rss_during_mb"] > 0 and math.isfinite(evaluation["nll"])

    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "NLL @ 2 s" in markdown and "nll_vs_time.png" in markdown and "ratio vs plain" in markdown
    assert (tmp_path / "nll_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_are_counted_from_keras_indices_with_several_steps_per_execution():
    """10 steps per epoch run 4 per call: Keras reports indices 3, 7, 11 (past the end); 20 steps in 2 epochs."""
    import numpy as np

    from benchmarks import harness
    from vae_keras import build_vae

    counter = harness.StepCounter()
    assert [counter.batch_end(b, {"steps": 10}) for b in (3, 7, 11)] == [4, 8, 10]
    counter.new_epoch()
    assert counter.batch_end(3, {"steps": 10}) == 14

    vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), seed=0)
    vae.compile(optimizer="adam", steps_per_execution=4)
    snaps, times = harness.Snapshots([1e9], batch_size=32), harness.BatchTimes(1e9)
    vae.fit(np.zeros((320, 28, 28, 1), np.float32), epochs=2, batch_size=32, callbacks=[snaps, times], verbose=0)
    assert int(vae.optimizer.iterations) == 20
    assert snaps.batches == 20 and times.steps[-1] == 20 and len(times.steps) == 6  # 3 calls per epoch
    assert snaps.snapshots[0]["batches"] == 20  # taken at the end of training

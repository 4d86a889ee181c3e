"""Which defaults make `vae-keras train --dataset D --time-limit S` best? Candidates side by side.

    python -m benchmarks.defaults_study --budget 120 --dataset fashion [--candidates NAME,...]

Each candidate is the CLI's default `TrainConfig` plus a few overrides (and, for options the CLI does
not have yet, a callback that emulates them: a cosine learning-rate decay over the time budget, XLA).
All are trained one after the other in one process for the same wall-clock budget, snapshotted at
budget/4, /2, /1 and scored exactly like `benchmarks.run` does. Writes ``defaults_study.json`` and
``DEFAULTS_STUDY.md`` to ``--output-dir`` (default benchmarks/).
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Rounds 1 and 2 ran against the defaults of that time; pinning them keeps those candidates what was measured.
OLD_DEFAULTS = {"batch_size": 64, "learning_rate": 1e-3, "kl_warmup_epochs": 0.0, "steps_per_execution": 1}
NO_CAP = {**OLD_DEFAULTS, "epochs": 10_000}  # let the time limit, not the then-default 30 epochs, end training


def _time_cosine(budget):
    return [harness.TimeCosine(budget)]


def _jit(budget):
    return [harness.JitCompile()]


# name: (description, TrainConfig overrides, callbacks factory or None)
CANDIDATES = {
    "current": ("the defaults of rounds 1-2 (epochs=30 cap, MLP 512-256, latent 32, batch 64, lr 1e-3 constant)",
                {**OLD_DEFAULTS, "epochs": 30}, None),
    "nocap": ("current, epochs uncapped (time limit ends training)", NO_CAP, None),
    "mlp1024": ("nocap + hidden 1024,512", {**NO_CAP, "hidden": (1024, 512)}, None),
    "conv": ("nocap + conv network (default filters)", {**NO_CAP, "model": "conv"}, None),
    "latent50": ("nocap + latent 50", {**NO_CAP, "latent_dim": 50}, None),
    "latent16": ("nocap + latent 16", {**NO_CAP, "latent_dim": 16}, None),
    "b128": ("nocap + batch 128, lr 1e-3", {**NO_CAP, "batch_size": 128}, None),
    "b128_lr2e-3": ("nocap + batch 128, lr 2e-3", {**NO_CAP, "batch_size": 128, "learning_rate": 2e-3}, None),
    "b256_lr2e-3": ("nocap + batch 256, lr 2e-3", {**NO_CAP, "batch_size": 256, "learning_rate": 2e-3}, None),
    "lr2e-3_timecos": ("nocap + lr 2e-3, cosine decay over the time budget", {**NO_CAP, "learning_rate": 2e-3}, _time_cosine),
    "timecos": ("nocap + lr 1e-3, cosine decay over the time budget", NO_CAP, _time_cosine),
    "klwarmup2": ("nocap + KL warm-up over 2 epochs", {**NO_CAP, "kl_warmup_epochs": 2.0}, None),
    "jit": ("nocap + XLA-compiled train step", NO_CAP, _jit),
    "iwae5": ("nocap + IWAE objective, K=5", {**NO_CAP, "objective": "iwae", "iw_samples": 5}, None),
    "klwarmup5": ("nocap + KL warm-up over 5 epochs", {**NO_CAP, "kl_warmup_epochs": 5.0}, None),
    "klwarmup2_b128_lr2e-3": ("nocap + KL warm-up 2 epochs, batch 128, lr 2e-3",
                              {**NO_CAP, "kl_warmup_epochs": 2.0, "batch_size": 128, "learning_rate": 2e-3}, None),
    "klwarmup2_mlp1024": ("nocap + KL warm-up 2 epochs, hidden 1024,512",
                          {**NO_CAP, "kl_warmup_epochs": 2.0, "hidden": (1024, 512)}, None),
    # combinations (round 2)
    "mlp1024_b128_lr2e-3_timecos": ("nocap + hidden 1024,512, batch 128, lr 2e-3, time cosine",
                                    {**NO_CAP, "hidden": (1024, 512), "batch_size": 128, "learning_rate": 2e-3}, _time_cosine),
    "b128_lr2e-3_timecos": ("nocap + batch 128, lr 2e-3, time cosine",
                            {**NO_CAP, "batch_size": 128, "learning_rate": 2e-3}, _time_cosine),
    "mlp1024_timecos": ("nocap + hidden 1024,512, lr 1e-3, time cosine", {**NO_CAP, "hidden": (1024, 512)}, _time_cosine),
    "mlp1024_lr2e-3_timecos": ("nocap + hidden 1024,512, lr 2e-3, time cosine",
                               {**NO_CAP, "hidden": (1024, 512), "learning_rate": 2e-3}, _time_cosine),
    # round 3: relative to the defaults adopted after round 2 (warm-up 2 epochs, batch 128, lr 2e-3, 32 steps per call)
    "defaults": ("today's defaults", {}, None),
    "defaults_mlp1024": ("today's defaults + hidden 1024,512", {"hidden": (1024, 512)}, None),
    "defaults_b256_lr3e-3": ("today's defaults + batch 256, lr 3e-3", {"batch_size": 256, "learning_rate": 3e-3}, None),
    # round 4: the networks in bfloat16 (--dtype-policy mixed_bfloat16)
    "defaults_bf16": ("today's defaults + --dtype-policy mixed_bfloat16", {"dtype_policy": "mixed_bfloat16"}, None),
    "defaults_mlp1024_bf16": ("today's defaults + hidden 1024,512 + mixed_bfloat16",
                              {"hidden": (1024, 512), "dtype_policy": "mixed_bfloat16"}, None),
}
BASELINE_CANDIDATES = {
    "burda2016_b20": ("Burda et al. baseline, batch 20 (paper)", 20),
    "burda2016_b100": ("Burda et al. baseline, batch 100", 100),
}
ROUND1 = ["current", "nocap", "mlp1024", "conv", "latent50", "b128_lr2e-3", "b256_lr2e-3", "lr2e-3_timecos",
          "klwarmup2", "jit", "iwae5", "burda2016_b20", "burda2016_b100"]


def log(msg):
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_study(dataset, budget, names, iw_samples, test_images, seed=0):
    from vae_keras import data as data_lib
    from vae_keras.training import test_images as make_test_images

    spec = harness.resolve_dataset(dataset)
    data = data_lib.load_images(spec)
    x_train_float = data_lib.to_float(data.x_train)
    x_test = make_test_images(data, binarized=True)[:test_images]
    checkpoints = [budget / 4, budget / 2, float(budget)]
    out_root = tempfile.mkdtemp(prefix="vae_keras_study_")
    rows = {}
    for name in names:
        load_before = harness.load_average()
        log(f"training {name} for {budget:g} s")
        if name in BASELINE_CANDIDATES:
            label, batch = BASELINE_CANDIDATES[name]
            run = harness.train_baseline_timed("burda2016", x_train_float, budget, checkpoints, seed=seed, batch_size=batch)
        else:
            label, overrides, callbacks = CANDIDATES[name]
            overrides = {**overrides, "seed": seed}
            run = harness.train_vae_keras(spec, data, budget, checkpoints, overrides=overrides,
                                          extra_callbacks=callbacks(budget) if callbacks else (), out=out_root)
        run["load_average_before"], run["load_average_after"] = load_before, harness.load_average()
        harness.score_snapshots(run, x_test, iw_samples)
        run["label"] = label
        run.pop("export_path", None)
        rows[name] = run
        log(f"{name}: " + ", ".join(f"{p['checkpoint']:g}s={p['nll']:.2f}" for p in run["points"])
            + f" ({run['epochs_trained']} epochs, {run['points'][-1]['images_seen']:,} images)")
    shutil.rmtree(out_root, ignore_errors=True)  # the exports were only a side effect of train()
    return {"dataset": dataset, "budget": budget, "checkpoints": checkpoints, "iw_samples": iw_samples,
            "test_images": int(len(x_test)), "candidates": rows}


def render(study, command, machine, seconds):
    cps = study["checkpoints"]
    lines = [
        "# Defaults study: which settings give the best model in a fixed time?", "",
        f"`{command}` on {study['started']}, {machine['nproc']} CPUs ({machine['cpu_model']}), TF "
        f"{machine['tensorflow']}; {seconds / 60:.0f} min. Dataset {study['dataset']}, {study['budget']:g} s "
        f"of training each, one after the other in one process; NLL by importance sampling, K = "
        f"{study['iw_samples']}, first {study['test_images']} test images binarized with seed 0 (± = SE over "
        "images; differences between rows are paired, so smaller differences than the ± are still meaningful). "
        f"Training seed {study.get('seed', 0)} for all; one run each, so differences below ~1 nat are within "
        "run-to-run noise.", "",
        "| candidate | " + " | ".join(f"NLL @ {c:g} s" for c in cps)
        + " | epochs | images seen | first step (s) | CPU-s used | load avg (1 min) |",
        "|---|" + "---|" * (len(cps) + 5),
    ]
    for name, r in sorted(study["candidates"].items(), key=lambda kv: kv[1]["points"][-1]["nll"]):
        pts = r["points"]
        lines.append(f"| `{name}`: {r['label']} | " + " | ".join(f"{p['nll']:.2f} ± {p['nll_se']:.2f}" for p in pts)
                     + f" | {r['epochs_trained']} | {pts[-1]['images_seen']:,} | {r.get('first_step_seconds', '—')} | "
                     f"{pts[-1].get('cpu_seconds', '—')} | "
                     f"{r['load_average_before'][0] if r['load_average_before'] else '—'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.defaults_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion")
    p.add_argument("--budget", type=float, default=120.0)
    p.add_argument("--candidates", default=",".join(ROUND1), help=f"comma-separated, from {sorted(CANDIDATES) + sorted(BASELINE_CANDIDATES)}")
    p.add_argument("--iw-samples", type=int, default=200)
    p.add_argument("--test-images", type=int, default=2000)
    p.add_argument("--output-dir", default=HERE)
    p.add_argument("--seed", type=int, default=0, help="training seed of every candidate (scoring stays seed 0)")
    p.add_argument("--tag", default="", help="suffix of the output files (defaults_study{TAG}.json/.md)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES and n not in BASELINE_CANDIDATES]
    if unknown:
        p.error(f"unknown candidates {unknown}")
    from vae_keras.fileio import atomic_write_text

    t0 = time.perf_counter()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    study = run_study(args.dataset, args.budget, names, args.iw_samples, args.test_images, seed=args.seed)
    study["seed"] = args.seed
    study["started"] = started
    machine = harness.machine_description()
    seconds = time.perf_counter() - t0
    command = "python -m benchmarks.defaults_study " + " ".join(argv)
    study["command"], study["machine"], study["total_seconds"] = command, machine, round(seconds, 1)
    os.makedirs(args.output_dir, exist_ok=True)
    atomic_write_text(os.path.join(args.output_dir, f"defaults_study{args.tag}.json"),
                      json.dumps(study, indent=2, default=str) + "\n", overwrite=True)
    atomic_write_text(os.path.join(args.output_dir, f"DEFAULTS_STUDY{args.tag}.md"),
                      render(study, command, machine, seconds), overwrite=True)
    log(f"done in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()

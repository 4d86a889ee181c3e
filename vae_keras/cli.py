"""The ``vae-keras`` command line: train, evaluate, sample, list, dashboard.

A thin front over `vae_keras.training`, `vae_keras.evaluation` and `vae_keras.exported`. Errors the
user can fix are printed as one line on stderr with a non-zero exit and no traceback (``--debug``
shows it).
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np

from vae_keras import checks

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BUG = 1


PREFIX = "vae-keras"  # every message of the command line starts with "vae-keras: "


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # No abbreviations: `--epoch 3` is an unknown flag, not silently --epochs (and a future flag that shares
        # the prefix cannot change what an old command means).
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # One line, not argparse's usage block; main() adds the "vae-keras: error: " prefix.
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _UsageError(Exception):
    pass


# Flag types (vae_keras.checks.argument_type): a refused value is argparse's one line "expected ..., received '...'".
_positive_int = checks.argument_type(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = checks.argument_type(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = checks.argument_type(float, lambda v: 0 < v < float("inf"), "a number > 0")  # also refuses nan
_finite_float = checks.argument_type(float, math.isfinite, "a finite number", unconvertible="a number")
_fraction = checks.argument_type(float, lambda v: 0.0 <= v < 1.0, "a number >= 0 and < 1")  # also refuses nan


def _sizes(text):
    """"32" -> 32, "100,50" -> (100, 50)."""
    sizes = tuple(int(d) for d in text.split(",") if d.strip())
    return sizes[0] if len(sizes) == 1 else sizes


_latent_dim = checks.argument_type(_sizes, lambda v: v >= 1 if isinstance(v, int) else bool(v) and min(v) >= 1,
                                   "a positive integer, or comma-separated ones such as 100,50")
_hidden = checks.argument_type(lambda text: tuple(int(v) for v in text.split(",") if v.strip()),
                               lambda v: bool(v) and min(v) >= 1, "comma-separated positive integers such as 512,256")


def build_parser():
    from vae_keras import __version__

    parser = _Parser(prog="vae-keras", description="Train, evaluate and sample variational autoencoders (Keras 3 / TensorFlow).")
    parser.add_argument("--version", action="version", version=f"vae-keras {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors, and TensorFlow's own start-up lines")
    # --debug is accepted after the subcommand too (`vae-keras train --debug ...`); SUPPRESS keeps a
    # subcommand's default from overwriting a --debug given before it.
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors, and TensorFlow's own start-up lines")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", parents=[debug], help="train a VAE and export it as a SavedModel",
                       description="Train a VAE on a dataset and export it to OUT/NAME/VERSION (TF Serving layout).")
    # Defaults are None so that a --config file can fill what the command line leaves out.
    t.add_argument("--config", help="JSON or YAML file whose keys mirror these flags (flags given here win)")
    t.add_argument("--dataset", help="'mnist-10k' (embedded, default), 'dsprites' (rendered), a TFDS name, or a path to an IDX folder, image folder or .npz")
    t.add_argument("--model", choices=["mlp", "conv", "conv64"],
                   help="encoder/decoder network (default mlp); conv64: Higgins et al.'s conv net for 64x64 images")
    t.add_argument("--hidden", type=_hidden, help="hidden sizes, e.g. 512,256 (MLP units or conv filters)")
    t.add_argument("--latent-dim", type=_latent_dim,
                   help="size of z (default 32); with --latent-layers L, one size for all layers or L sizes, bottom first (e.g. 100,50)")
    t.add_argument("--latent-layers", type=_positive_int,
                   help="stochastic layers (default 1); 2 or more: Burda et al.'s hierarchy, whose top layer is the one sampled and shown")
    t.add_argument("--likelihood", choices=["bernoulli", "gaussian", "logistic"],
                   help="decoder distribution: bernoulli (default), gaussian (learned scale), logistic (256-level discretized, for 8-bit colour)")
    t.add_argument("--decoder", choices=["factorized", "pixelcnn"],
                   help="factorized (default): pixels independent given z; pixelcnn: an autoregressive PixelCNN head over "
                        "the pixels, conditioned on z (bernoulli only; sampling is sequential over the pixels)")
    t.add_argument("--conditional", action="store_const", const=True,
                   help="train a conditional VAE q(z|x,y), p(x|z,y) on the dataset's labels")
    t.add_argument("--binarize", choices=["auto", "dynamic", "none"],
                   help="dynamic: resample binary pixels every batch; auto (default): dynamic for one-channel images with bernoulli")
    t.add_argument("--epochs", type=_positive_int, help="maximum number of epochs (default: 30, or as many as --time-limit allows)")
    t.add_argument("--time-limit", type=_positive_float, metavar="SECONDS", help="stop cleanly after this many seconds of training, then evaluate and export")
    t.add_argument("--batch-size", type=_positive_int, help="batch size (default 128)")
    t.add_argument("--learning-rate", type=_finite_float, help="Adam learning rate (default 2e-3)")
    t.add_argument("--lr-schedule", choices=["constant", "cosine"], help="cosine: decay to 5%% of --learning-rate over the run's budget, --epochs or --time-limit's "
                        "seconds (whichever ends first); default constant")
    t.add_argument("--beta", type=_finite_float, help="KL weight (1 = ELBO, >1 = beta-VAE)")
    t.add_argument("--kl-warmup-epochs", type=_finite_float, help="anneal the KL weight from 0 to beta over this many epochs (default 2, 0 under --capacity-max; 0 turns it off)")
    t.add_argument("--free-bits", type=_finite_float, help="KL floor per latent dim in nats during training")
    t.add_argument("--capacity-max", type=_finite_float,
                   help="controlled capacity (Burgess et al. 2018): push the KL towards a target growing to this many nats")
    t.add_argument("--capacity-epochs", type=_finite_float, help="epochs over which the capacity target grows (default 10)")
    t.add_argument("--capacity-gamma", type=_finite_float, help="weight of |KL - C| (default 1000)")
    t.add_argument("--objective", choices=["elbo", "iwae", "tcvae", "factorvae", "dipvae1", "dipvae2"],
                   help="training objective (default elbo): iwae (importance-weighted bound), tcvae (beta-TCVAE: --beta "
                        "weights the total correlation), factorvae (discriminator TC, weight --gamma), dipvae1/dipvae2 "
                        "(covariance penalty, --lambda-od/--lambda-d)")
    t.add_argument("--gamma", type=_finite_float, help="FactorVAE's weight of the discriminator's TC estimate (default 10)")
    t.add_argument("--lambda-od", type=_finite_float,
                   help="DIP-VAE's weight of the squared off-diagonal covariance entries (default 10)")
    t.add_argument("--lambda-d", type=_finite_float,
                   help="DIP-VAE's weight of the squared (diagonal - 1) entries (default 10 x --lambda-od for dipvae1, "
                        "--lambda-od for dipvae2)")
    t.add_argument("--iw-samples", type=_positive_int, help="importance samples K for --objective iwae")
    t.add_argument("--sample-quality", type=_non_negative_int, metavar="N",
                   help="score N random samples at export: FD, precision, recall (and class accuracy of a conditional "
                        "model) on the model card (default 0: off; 2000 is the benchmark's)")
    t.add_argument("--sampler", type=_sampler, help="where random samples' z come from: prior (the model's p(z), default) or "
                   "gmm:K, a K-component Gaussian mixture fitted to the training images' posterior means after training "
                   "(gmm: 10 components); used by the exported sample signature and vae-keras sample")
    t.add_argument("--iwae-gradient", choices=["plain", "dreg"],
                   help="encoder gradient of --objective iwae: plain (default) or dreg (Tucker et al. 2019's doubly "
                        "reparameterized gradient: the same expected value, lower variance)")
    t.add_argument("--prior", choices=["auto", "standard", "vamp", "mog"],
                   help="p(z): auto (default): vamp, or standard where a learned prior is refused (--conditional, "
                        "--free-bits, --latent-layers > 1, a disentangling --objective); standard N(0, I); vamp (VampPrior: "
                        "pseudo-inputs through the encoder, started from random training images); mog (a trainable "
                        "mixture of Gaussians)")
    t.add_argument("--prior-components", type=_positive_int, metavar="K",
                   help="components of --prior vamp (pseudo-inputs, default 100) or mog (default 10)")
    t.add_argument("--no-output-bias-init", dest="output_bias_init", action="store_const", const=False,
                   help="do not initialise the decoder's output bias from the data mean")
    t.add_argument("--validation-split", type=_fraction, metavar="F",
                   help="hold out this share of the training images (seeded by --seed) for the val_* metrics and early "
                        "stopping, and train on the rest (default 0: val_* are measured on the test split, for monitoring only)")
    t.add_argument("--early-stopping-patience", type=_non_negative_int,
                   help="stop after this many epochs without a lower val_loss and restore the best weights (0: off); "
                        "needs --validation-split, so that the weights are not selected on the test split")
    t.add_argument("--steps-per-execution", type=_positive_int, metavar="N",
                   help="training steps per compiled call: the same updates with less per-step overhead (default 32 on one device, 1 with --distribute)")
    t.add_argument("--dtype-policy", choices=["float32", "mixed_bfloat16", "mixed_float16"],
                   help="precision of the networks (default float32): mixed_bfloat16 runs them in bfloat16, mixed_float16 in "
                        "float16 with dynamic loss scaling; the losses stay float32")
    t.add_argument("--clip-norm", type=_finite_float, help="clip the global gradient norm to this value")
    t.add_argument("--checkpoint-dir", help="save a checkpoint every epoch; rerunning the same command resumes from it")
    t.add_argument("--eval-iw-samples", type=_non_negative_int, help="K for the test log-likelihood in the model card (default 100, 0 skips)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--out", help="models folder (default saved_models)")
    t.add_argument("--name", help="model name (default: from the dataset)")
    t.add_argument("--tensorboard", metavar="LOGDIR", help="write TensorBoard logs here")
    t.add_argument("--verbose", type=int, choices=[0, 1, 2], help="Keras verbosity (default: progress bar on a terminal)")
    t.add_argument("--distribute", choices=["none", "mirrored", "multi-worker"],
                   help="tf.distribute strategy: mirrored (all local GPUs), multi-worker (cluster from TF_CONFIG; "
                        "run the same command on every worker); default none")

    e = sub.add_parser("evaluate", parents=[debug], help="test ELBO, importance-weighted log-likelihood, KL and active units")
    e.add_argument("model_dir", metavar="MODEL_DIR", help="saved_models/NAME (newest version) or saved_models/NAME/VERSION")
    e.add_argument("--dataset", help="dataset spec (default: the one in the model card)")
    e.add_argument("--iw-samples", type=_positive_int, default=1000, help="importance samples K (default 1000)")
    e.add_argument("--batch-size", type=_positive_int, default=100, help="images per step (default 100)")
    e.add_argument("--num-images", type=_positive_int, help="evaluate only the first N test images")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the importance samples, the random samples and the disentanglement metrics' samples "
                        "(default 0)")
    e.add_argument("--sample-quality", type=_non_negative_int, default=0, metavar="N",
                   help="also score N random samples against the test images: Frechet distance, precision, recall "
                        "(and class accuracy for a conditional model) in a classifier's features (default 0: off)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.add_argument("--disentanglement", action="store_true",
                   help="also compute MIG, the FactorVAE score, SAP, DCI and the beta-VAE score on images rendered from "
                        "the dataset's factors of variation (a dataset with factors, such as dsprites; --num-images does "
                        "not apply to them)")
    e.add_argument("--disentanglement-samples", type=_positive_int, metavar="N",
                   help="with --disentanglement: training samples of every metric, test samples N // 2 (default 10000, "
                        "as disentanglement_lib)")
    e.add_argument("--vote-pool", type=_vote_pool, metavar="N|fresh",
                   help="with --disentanglement: the FactorVAE and beta-VAE scores draw the images of their votes from "
                        "N images encoded once (default 10000: seconds), or 'fresh' renders new images for every vote "
                        "as disentanglement_lib (about 100 times the images: minutes)")
    e.add_argument("--dci-predictor", choices=["forest", "gbt", "lasso"],
                   help="with --disentanglement: DCI's predictor, forest (a random forest, seconds; default), gbt "
                        "(disentanglement_lib's gradient boosted trees, minutes) or lasso (seconds)")

    s = sub.add_parser("sample", parents=[debug], help="decode z drawn from the model's prior (N(0, I) unless learned) into an image grid PNG")
    s.add_argument("model_dir", metavar="MODEL_DIR", help="saved_models/NAME (newest version) or saved_models/NAME/VERSION")
    s.add_argument("--num", type=_positive_int, default=64, help="number of samples (default 64)")
    s.add_argument("--output", required=True, help="PNG file to write (never overwritten unless --overwrite)")
    s.add_argument("--seed", type=int, default=0, help="seed of z: the same seed draws the same samples (default 0)")
    s.add_argument("--temperature", type=_finite_float, default=1.0, help="scale of z ~ N(0, I) (default 1; a learned prior has none)")
    s.add_argument("--ncol", type=_positive_int, help="images per row (default: square grid; a row per class with --label all)")
    s.add_argument("--label", help="conditional models: a class index or name, or 'all' for a row per class")
    s.add_argument("--scale", type=_positive_int, default=1, metavar="N",
                   help="enlarge every tile N times, nearest neighbour (crisp pixels; default 1: 28-pixel MNIST tiles)")
    s.add_argument("--overwrite", action="store_true", help="replace --output if it exists")

    ls = sub.add_parser("list", parents=[debug], help="list the exported models in a models folder")
    ls.add_argument("models_dir", metavar="MODELS_DIR", nargs="?", default="saved_models",
                    help="the models folder to list (default saved_models); a version whose SavedModel does not load is shown as BROKEN")

    d = sub.add_parser("dashboard", parents=[debug], help="open the Streamlit dashboard on a models folder (the dashboard extra)",
                       description="Serve the dashboard (needs the dashboard extra: pip install vae_keras[dashboard]) "
                                   "on this machine; stop it with Ctrl-C.")
    d.add_argument("--models-dir", default="saved_models", metavar="DIR", help="the models folder to show (default saved_models)")
    d.add_argument("--port", type=_port, default=8501, metavar="N", help="port on localhost (default 8501)")
    return parser


def _sampler(text):
    from vae_keras import options
    from vae_keras.errors import ConfigError

    try:
        options.parse_sampler(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected prior, gmm or gmm:K with K >= 1, received {text!r}") from None
    return text


def _port(text):
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, received {text!r}")
    return value


def _train(args):
    from vae_keras import training

    values = {}
    if args.config:
        values.update(training.load_config_file(args.config))
    skip = {"command", "config", "debug"}
    values.update({k: v for k, v in vars(args).items() if k not in skip and v is not None})
    config = training.TrainConfig.from_dict(values)
    result = training.train(config)
    if result["export_path"] is None:  # a multi-worker run's non-chief worker
        print("Worker finished; the chief worker exports the model.")
        return 0
    m = result["metrics"]
    print(f"Exported {result['export_path']}")
    if "test_nll" in m:
        subset = (f" ({m['test_num_images']:,} of {m['test_images_available']:,} test images: --time-limit; see the model card)"
                  if m["test_num_images"] < m["test_images_available"] else "")
        bits = f" = {m['test_bits_per_dim']:.4f} bits/dim" if m.get("test_bits_per_dim") is not None else ""
        print(f"Test: ELBO {m['test_elbo']:.2f} nats, NLL (K={m['test_iw_samples']}) {m['test_nll']:.2f} "
              f"{m['test_nll_meaning']}{bits}, KL {m['test_kl']:.2f}, "
              f"active units {_active_units(m['test_active_units'], m['test_latent_dim'])}{subset}")
    if "test_sample_fd" in m:
        accuracy = f", class accuracy {m['test_sample_class_accuracy']:.3f}" if "test_sample_class_accuracy" in m else ""
        print(f"Samples: FD {m['test_sample_fd']:.2f}, precision {m['test_sample_precision']:.3f}, "
              f"recall {m['test_sample_recall']:.3f}{accuracy} ({m['test_sample_quality']})")
    return 0


def _active_units(count, latent_dim):
    from vae_keras.active_units import ACTIVE_UNIT_THRESHOLD

    if count is None:
        return "undefined (needs two or more test images)"
    return f"{count}/{latent_dim} (Var_x E_q[z_j|x] > {ACTIVE_UNIT_THRESHOLD:g})"


def _load_keras_model(version_dir):
    import keras

    from vae_keras import export
    from vae_keras.errors import ModelDirError

    path = os.path.join(version_dir, export.ASSETS_EXTRA, export.KERAS_FILE)
    if not os.path.exists(path):
        raise ModelDirError(f"{version_dir!r} has no {export.ASSETS_EXTRA}/{export.KERAS_FILE}; it was not exported by vae_keras.")
    import vae_keras.models  # noqa: F401  (registers the classes for safe-mode loading)

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - Keras raises several types for a broken file
        raise ModelDirError(f"Cannot load {path!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _evaluate(args):
    from vae_keras import data as data_lib
    from vae_keras import evaluation, exported, training

    for flag, value in (("--disentanglement-samples", args.disentanglement_samples), ("--dci-predictor", args.dci_predictor),
                        ("--vote-pool", args.vote_pool)):
        if value is not None and not args.disentanglement:
            raise _UsageError(f"{flag} needs --disentanglement; add it, or drop {flag}")
    version_dir = exported.resolve_version_dir(args.model_dir)
    card = exported.read_card(version_dir)
    spec = args.dataset or card.get("dataset")
    if not spec:
        raise _UsageError("the model card names no dataset; pass --dataset SPEC")
    exported.ExportedVAE(version_dir)  # a version whose SavedModel does not load is broken: refused like `sample`
    model = _load_keras_model(version_dir)
    data = data_lib.load_images(spec)
    if tuple(data.image_shape) != tuple(model.image_shape):
        from vae_keras.errors import DataError

        raise DataError(f"Dataset {spec!r} has images of shape {data.image_shape}, the model expects {model.image_shape}. Pass the dataset the model was trained on.")
    if args.disentanglement:  # refused before the long likelihood pass, not after it
        evaluation.check_disentanglement(model, data, spec, args.seed)
    binarized, scored = _test_binarized(card, model)
    x = training.test_images(data, binarized)
    labels = None
    if model.conditional:
        if data.y_test is None:
            from vae_keras.errors import DataError

            raise DataError(f"This conditional model needs test labels, and dataset {spec!r} has none.")
        labels = data.y_test
    if args.num_images:
        x = x[: args.num_images]
        labels = None if labels is None else labels[: args.num_images]
    result = evaluation.evaluate(model, x, iw_samples=args.iw_samples, batch_size=args.batch_size,
                                 seed=args.seed, progress=not args.json and sys.stderr.isatty(), labels=labels)
    result.update({"model": version_dir, "dataset": spec, "test_binarized": binarized, "scored_images": scored})
    if args.sample_quality:
        from vae_keras import sample_quality

        result["sample_quality"] = sample_quality.evaluate_samples(model, data, args.sample_quality, seed=args.seed)
    if args.disentanglement:
        result["disentanglement"] = evaluation.disentanglement(
            model, data, spec, num_train=args.disentanglement_samples, seed=args.seed, batch_size=args.batch_size,
            dci_predictor=args.dci_predictor,  # None: the package's default (the random forest)
            **({} if args.vote_pool is None else {"pool_size": None if args.vote_pool == "fresh" else args.vote_pool}))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        bits = f", {result['bits_per_dim']:.4f} bits/dim" if result["bits_per_dim"] is not None else ", no bits/dim"
        print(f"model            {version_dir}")
        print(f"dataset          {spec} ({result['num_images']} test images)")
        print(f"scored images    {scored}")
        print(f"ELBO             {result['elbo']:.3f} nats")
        print(f"NLL (IW, K={result['iw_samples']}) {result['nll']:.3f} {result['nll_meaning']}{bits}")
        print(f"KL               {result['kl']:.3f} nats")
        print(f"active units     {_active_units(result['active_units'], result['latent_dim'])}")
        if "sample_quality" in result:
            print(f"sample quality   {_sample_quality_text(result['sample_quality'])}")
        if args.disentanglement:
            _print_disentanglement(result["disentanglement"])
    return 0


def _vote_pool(text):
    """``--vote-pool``: a positive integer, or 'fresh'."""
    if text == "fresh":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'fresh', received {text!r}") from None


def _sample_quality_text(q):
    text = (f"FD {q['fd']:.2f}, precision {q['precision']:.3f}, recall {q['recall']:.3f} ({q['num_samples']:,} samples "
            f"against {q['num_reference']:,} test images, k={q['k']})")
    if "class_accuracy" in q:
        text += f", class accuracy {q['class_accuracy']:.3f}"
    return text


def _print_disentanglement(d):
    s, settings = d["summary"], d["settings"]
    print(f"factors          {', '.join(d['factor_names'])} (sizes {', '.join(str(v) for v in d['factor_sizes'])}; "
          f"{settings['num_train']} training / {settings['num_test']} test samples, seed {settings['seed']})")
    dci_info = "R^2" if settings["dci_predictor"] == "lasso" else "accuracy"
    for label, value in (("MIG", s["mig"]), ("FactorVAE score", s["factorvae_score"]), ("SAP", s["sap"]),
                         ("DCI disentanglement", s["dci_disentanglement"]), ("DCI completeness", s["dci_completeness"]),
                         (f"DCI informativeness ({settings['dci_predictor']}, test {dci_info})", s["dci_informativeness"]),
                         ("beta-VAE score", s["beta_vae_score"])):
        print(f"{label:<16} {value:.3f}")


def _test_binarized(card, model):
    """Whether to score binarized test images, as training did, and a sentence saying which images are scored.

    Training records its choice as the card's ``test_binarized``; a card without it (older exports)
    falls back to binarizing for a Bernoulli model, and the sentence says so.
    """
    from vae_keras.training import TEST_BINARIZE_SEED

    if isinstance(card.get("test_binarized"), bool):
        binarized, source = card["test_binarized"], "as the model card records (test_binarized)"
    else:
        binarized = model.likelihood.name == "bernoulli"
        source = "the model card does not record test_binarized: binarized because the likelihood is Bernoulli"
    what = f"binarized once with seed {TEST_BINARIZE_SEED}" if binarized else "the raw intensities (not binarized)"
    return binarized, f"{what}, {source}"


def _sample(args):
    from vae_keras import exported, images

    if not args.output.lower().endswith(".png"):
        raise _UsageError(f"--output must be a .png file, received {args.output!r}")
    if os.path.exists(args.output) and not args.overwrite:
        from vae_keras.errors import OutputExistsError

        raise OutputExistsError(f"{args.output!r} exists; pass --overwrite or choose another --output.")
    model = exported.ExportedVAE(args.model_dir)
    ncol = args.ncol
    if model.conditional:
        if args.label is None:
            raise _UsageError(f"this model is conditional; pass --label with a class in "
                              f"0..{model.num_classes - 1}, a class name, or 'all'")
        if args.label == "all":
            ncol = ncol or args.num
            label = np.repeat(np.arange(model.num_classes), args.num)
            out = model.sample(len(label), seed=args.seed, temperature=args.temperature, label=label)
        else:
            out = model.sample(args.num, seed=args.seed, temperature=args.temperature,
                               label=_class_index(model, args.label))
    else:
        if args.label is not None:
            raise _UsageError(f"--label needs a conditional model; {model.path!r} is not one")
        out = model.sample(args.num, seed=args.seed, temperature=args.temperature)
    grid = images.upscale(images.make_grid(out["x_mean"], ncol=ncol), args.scale)
    images.save_png(args.output, grid, overwrite=args.overwrite)
    print(f"Wrote {len(out['x_mean'])} samples to {args.output}")
    return 0


def _class_index(model, text):
    """A class given by index ('3') or by name, exact or in any letter case ('Sandal', 'sandal')."""
    names = model.class_names
    folded = [n.casefold() for n in names]
    if text in names and not text.isdigit():
        return names.index(text)
    if folded.count(text.casefold()) == 1 and not text.isdigit():
        return folded.index(text.casefold())
    try:
        return int(text)
    except ValueError:
        raise _UsageError(f"--label {text!r} is neither a class index nor one of {names}") from None


def _list(args):
    from vae_keras.errors import ModelDirError

    if not os.path.isdir(args.models_dir):
        what = "is not a folder" if os.path.exists(args.models_dir) else "does not exist"
        raise ModelDirError(f"Models folder {args.models_dir!r} {what}. Pass the folder given to 'vae-keras train --out' "
                            "(default saved_models).")
    from vae_keras import evaluation, exported

    entries = exported.list_models(args.models_dir)
    if not entries:
        print(f"No models in {args.models_dir!r}. Train one: vae-keras train --dataset mnist-10k --out {args.models_dir}")
        return 0
    for entry in entries:
        if not entry.error:
            try:  # healthy only if its SavedModel loads with the contract's signatures, as `sample` and servers need
                exported.ExportedVAE(entry.path)
            except ModelDirError as e:
                entry.error = str(e)
        if entry.error:
            print(f"{entry.label:30s} BROKEN: {entry.error}")
            continue
        card = entry.card
        nll = card.get("metrics", {}).get("test_nll")
        label = evaluation.NLL_SHORT_LABELS[evaluation.card_nll_kind(card)]
        nll_text = f"test {label} {nll:.2f}" if isinstance(nll, (int, float)) else "test NLL -"
        print(f"{entry.label:30s} {card.get('dataset')!s:20s} latent {card['latent_dim']:<4d} {nll_text}")
    return 0


DASHBOARD_EXTRA = "pip install vae_keras[dashboard]"


def dashboard_command(models_dir, port):
    """The ``streamlit run`` command line of the packaged dashboard on ``models_dir``, on localhost:``port``."""
    from vae_keras.dashboard import APP_PATH

    return [sys.executable, "-m", "streamlit", "run", str(APP_PATH), "--server.port", str(port),
            "--server.address", "localhost", "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer", "--", "--models-dir", os.path.abspath(models_dir)]


def _dashboard(args):
    missing = [m for m in ("streamlit", "altair", "pandas") if importlib.util.find_spec(m) is None]
    if missing:
        from vae_keras.errors import ConfigError

        raise ConfigError(f"the dashboard needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                          f"installed: {DASHBOARD_EXTRA} (or pip install '.[dashboard]' in a checkout)")
    env = dict(os.environ)
    if not getattr(args, "debug", False):
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"Dashboard on {os.path.abspath(args.models_dir)}: http://localhost:{args.port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(dashboard_command(args.models_dir, args.port), env=env)


COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample, "list": _list, "dashboard": _dashboard}


# What a Ctrl-C leaves behind, per command (train's own interruptions say more: TrainingInterrupted).
_INTERRUPTED = {
    "train": "nothing was exported by this run",
    "evaluate": "the evaluation was stopped before it finished; nothing was written",
    "sample": "no image was written",
    "list": "nothing was changed",
    "dashboard": "the dashboard stopped",
}


def _exit_now(code):
    """Ends the process at once after a command that succeeded, skipping the interpreter's teardown.

    That teardown took 13-20 s after "Exported" when --time-limit had stopped an epoch midway: the
    final garbage collection spends them destroying Keras's unfinished epoch iterator (measured: 13.0 s
    inside gc.collect(), 0.5 s after a complete epoch). Everything a command writes is already complete
    on disk (atomic, fsynced writes); the streams and logging are flushed first.
    """
    if "tensorflow" not in sys.modules:  # nothing slow to skip
        return
    import logging

    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _say(message):
    """Prints one line on stderr with the command line's one prefix, ``vae-keras: ``."""
    print(f"{PREFIX}: {message}", file=sys.stderr)


def main(argv=None):
    """Entry point of ``vae-keras`` and ``python -m vae_keras``; returns the exit code.

    The arguments are parsed before TensorFlow is imported, so ``--help`` and typos answer at once.
    Every message starts with ``vae-keras: `` (``vae-keras: error: ...`` for errors the user can fix).
    """
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = build_parser().parse_args(argv)
        from vae_keras.tf_logging import quiet_tensorflow

        quiet_tensorflow(debug=args.debug)  # TensorFlow's start-up lines, unless --debug
        code = COMMANDS[args.command](args)
        if from_command_line:
            _exit_now(code)
        return code
    except _UsageError as e:
        _say(f"error: {e}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _say(f"interrupted; {_INTERRUPTED.get(getattr(args, 'command', None), 'nothing was changed')}.")
        return EXIT_INTERRUPTED
    except Exception as e:
        from vae_keras.errors import VaeKerasError

        if getattr(args, "debug", False):
            raise
        if type(e).__name__ == "TrainingInterrupted":
            _say(str(e))
            return EXIT_INTERRUPTED
        if isinstance(e, VaeKerasError):
            _say(f"error: {e}")
            return EXIT_USER_ERROR
        _say(f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
             "(rerun with --debug for the traceback and report it)")
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())

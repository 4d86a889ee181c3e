"""The Random samples page: z from the model's sampler decoded, with seed, temperature and class; for a model with a
fitted mixture (``sampler`` gmm:K), the standard prior's samples beside the mixture's; for a conditional model, how
often the dataset's sample-quality classifier recognises the samples as their class."""

import math

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import (
    SEED_MAX,
    file_stem,
    predicted_classes,
    predicted_prior_classes,
    sample_classifier,
    sample_images,
    show_grid,
    standard_prior_images,
)

TITLE = "Random samples"


def render(sel, listed):
    prior = sel.prior
    sampler = ((sel.card or {}).get("sampler") or {}).get("name", "prior")
    st.subheader("Random samples: " + ("z ~ N(0, T²·I)" if (prior, sampler) == ("standard", "prior") else dl.sampler_words(sel.card))
                 + " decoded")
    c1, c2, c3 = st.columns([3, 3, 2], vertical_alignment="bottom")
    n = c1.slider("Number of samples", 1, 100, 36, key="sample_n", persist_state="page")
    if prior != "standard" or sampler != "prior":
        # z comes from a learned prior or a fitted mixture, which have no temperature (ExportedVAE.sample refuses one)
        temperature = 1.0
        c2.caption(f"z ~ the learned {prior!r} prior (no temperature)" if sampler == "prior" else
                   f"z ~ the {sampler} mixture fitted to the training images' posterior means (no temperature)")
    else:
        temperature = c2.slider("Temperature T (scale of z)", 0.0, 2.0, 1.0, step=0.05, key="sample_t",
                                persist_state="page", help="Must be > 0")
    # Drawing again is the seed box's + button: the browser adds 1 per click and sends the new seed, so every click
    # counts however fast they come. (A "Draw again" button lost clicks: Streamlit merges the clicks of one button
    # that arrive while the page is still running into one, and a callback that bumped the seed read the seed box's
    # old value when a click came before the browser had the new one.)
    seed = c3.number_input("Seed (+ draws again)", 0, SEED_MAX, 0, key="sample_seed", persist_state="page",
                           help="Click + (or press ↑) to draw new samples: each click adds 1 to the seed")
    seed = int(seed)
    cls = sel.class_select("Class (the model is conditional)", "sample_class", allow_all=True)
    if not temperature > 0:
        st.error(f"Temperature T must be > 0 (received T = {temperature:g}: every code would be z = 0, one image "
                 "repeated). Move the slider to 0.05 or more.")
        return
    ncol = max(1, math.ceil(math.sqrt(n)))
    per_class = sel.conditional and cls is None and len(sel.class_names) <= 16
    if per_class:
        ncol = len(sel.class_names)  # one class per column
    scale = dl.display_scale(sel.h, target=max(28, min(84, 640 // (ncol * (sel.h + 2)) * sel.h)))
    labels = sel.labels(int(n), cls)
    x = sample_images(sel.key, sel.model, int(n), seed, float(temperature), labels)
    if sampler != "prior":
        mixture_beside_prior(sel, x, int(n), seed, sampler, prior, ncol, scale, labels)
        if sel.conditional:
            recognised_as_their_class(sel, int(n), seed, 1.0, labels, beside_prior=prior == "standard")
        return
    show_grid(dl.tile_pngs(x, scale), ncol, col_headers=list(sel.class_names) if per_class and n >= ncol else None,
              alt="sample", download=(dl.grid_download_png(x, ncol, scale),
                                      f"{file_stem(sel)}-samples-seed{seed}-T{temperature:g}.png", "dl_samples"))
    how = "the `sample` signature" if temperature == 1.0 else "the `decode` signature"
    which = ""
    if sel.conditional:
        which = " of every class in turn (one class per column)" if cls is None else f" of class {sel.class_names[cls]}"
    st.caption(f"{n} samples{which}, T = {temperature:.2f}, seed {seed}, decoded through {how}; each image is the "
               f"decoder's mean E[x|z]. Lower T keeps z near the origin (cleaner, less varied images).")
    if sel.conditional:
        recognised_as_their_class(sel, int(n), seed, float(temperature), labels)


def mixture_beside_prior(sel, x, n, seed, sampler, prior, ncol, scale, labels=None):
    """The fitted mixture's samples (the `sample` signature) beside the prior's, with the same seed.

    The standard prior's are decoded from z ~ N(0, I) drawn as `ExportedVAE.sample` draws them for a temperature
    (TensorFlow's stateless normal, seed [seed, 0]). A learned prior cannot be sampled from the export of a model
    with a mixture sampler: its `sample` signature draws from the mixture and `log_prior` only scores codes."""
    ncol = min(ncol, 6)
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**From the prior p(z)**")
        if prior == "standard":
            xp = standard_prior_images(sel.key, sel.model, n, seed, labels)
            show_grid(dl.tile_pngs(xp, scale), ncol, alt="sample from the prior",
                      download=(dl.grid_download_png(xp, ncol, scale), f"{file_stem(sel)}-prior-samples-seed{seed}.png",
                                "dl_samples_prior"))
            st.caption(f"z ~ N(0, I), TensorFlow's stateless normal with seed [{seed}, 0], through the `decode` "
                       "signature.")
        else:
            st.info(f"This model's learned {prior!r} prior cannot be sampled here: its export's `sample` signature "
                    f"draws from the {sampler} mixture, and `log_prior` only scores codes. Export a copy with "
                    "`--sampler prior` to see the prior's samples.")
    with right:
        st.markdown(f"**From the fitted mixture ({sampler})**")
        show_grid(dl.tile_pngs(x, scale), ncol, alt="sample from the mixture",
                  download=(dl.grid_download_png(x, ncol, scale), f"{file_stem(sel)}-{sampler.replace(':', '')}"
                            f"-samples-seed{seed}.png", "dl_samples"))
        st.caption(f"{dl.sampler_words(sel.card)}, seed {seed}, through the `sample` signature.")
    st.caption(f"{n} samples each, the same seed; each image is the decoder's mean E[x|z]. The mixture puts z where "
               "the encoder sends training images; the prior also draws codes that no image maps to (blurred or "
               "classless samples).")


def recognised_as_their_class(sel, n, seed, temperature, labels, beside_prior=False):
    """How often the dataset's sample-quality classifier recognises each drawn sample as the class it was drawn for
    (``beside_prior``: a model with a fitted mixture, whose samples are the mixture's; the standard prior's share at
    the same seed and labels follows)."""
    st.subheader("Recognised as their class?")
    spec = sel.card.get("dataset")
    classifier, reason = sample_classifier(spec) if spec else (None, "the model card names no dataset.")
    if classifier is None:
        st.info(f"No classifier to check the samples with: {reason}")
        return
    if tuple(classifier.image_shape) != (sel.h, sel.w, sel.c):
        st.info(f"The classifier of {spec!r} reads {classifier.image_shape} images, not this model's "
                f"{(sel.h, sel.w, sel.c)}.")
        return
    predicted = predicted_classes(sel.key, sel.model, spec, classifier, n, seed, temperature, labels)
    frame, overall = dl.recognition_table(labels, predicted, sel.class_names)
    st.dataframe(frame, hide_index=True, column_config={
        "share": st.column_config.ProgressColumn("recognised (share)", format="percent", min_value=0.0, max_value=1.0,
                                                 help="recognised ÷ samples")})
    accuracy = classifier.info.get("test_accuracy")
    st.caption(f"{overall:.0%} of the {n} samples above are recognised as the class they were drawn for by the "
               f"sample-quality classifier of {dl.short_dataset(spec)}"
               + (f" (its accuracy on the real test images: {accuracy:.1%})" if isinstance(accuracy, float) else "")
               + ". Few samples per class make these shares rough: draw more with the slider, or see the model card's "
                 "sample class accuracy (vae-keras train --sample-quality N).")
    if beside_prior:
        prior_predicted = predicted_prior_classes(sel.key, sel.model, spec, classifier, n, seed, labels)
        _, prior_overall = dl.recognition_table(labels, prior_predicted, sel.class_names)
        st.caption(f"The table counts the fitted mixture's samples (each class's own mixture). The prior's samples "
                   f"beside them, with the same labels and seed: {prior_overall:.0%} recognised as their class. "
                   "The encoder also puts the class into z, so a code from the class-free prior can say another class "
                   "than the label.")

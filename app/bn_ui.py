"""Batch-norm recalibration in the explorer: a sidebar toggle, shown only for models with batch norm,
that re-estimates the pruned network's batch-norm statistics on training images (no gradient step;
Li et al. 2020's adaptive batch norm, ``pruning/core/batchnorm.py``) and shows the accuracy with
and without it.  Off by default, so the live slider never pays for it; turned on, it draws its
three steps on a progress bar (3-12 s for ResNet-20 on a CPU core).  The result is cached per
(settings, number of images), and the engine caches the statistics per mask.  Needs the training
split (``PRUNING_DATA_DIR``): without it the toggle is disabled and says why.
"""

import streamlit as st

import pruning
from pruning import data
from pruning.core import batchnorm
from pruning.models.adapter import recalibration_unavailable

import state
from state import Settings
import turns

IMAGES = (500, 1000, 2000, 5000)  # training images to re-estimate the statistics on
HELP = ("Pruning shifts every layer's activations, but batch norm keeps normalising with the dense network's "
        "running mean and variance. This re-estimates them for the pruned network in one forward pass over "
        "class-stratified training images; no weight changes (Li et al. 2020, EagleEye's adaptive batch norm).")


@st.cache_data(max_entries=128, show_spinner=False)
def recalibrated(s: Settings, images: int) -> pruning.Evaluation:
    """The evaluation of ``s`` with batch-norm statistics re-estimated on ``images`` training images
    (the engine's default seed, so the same images every time)."""
    return pruning.evaluate(state.model(s.model), state.mask(s), s.weights, limit=s.limit, bn_recalibrate=images)


def _with_progress(s: Settings, images: int) -> pruning.Evaluation:
    """``recalibrated(s, images)`` in three steps, each drawn on a progress bar: the calibration
    images, the statistics (one forward pass over all of them) and the evaluation; the engine
    caches the first two, so a setting seen before passes through at once."""
    m = state.model(s.model)
    bar = st.empty()
    bar.progress(0.0, text=f"Step 1 of 3: reading {images:,} class-stratified training images…")
    try:
        with turns.aside():  # a long task the student asked for: the other pages go on meanwhile
            batchnorm.calibration_inputs(m, images)
            bar.progress(1 / 3, text=f"Step 2 of 3: re-estimating the batch-norm statistics in one forward pass over "
                                     f"{images:,} images…")
            batchnorm.statistics(m, state.mask(s), s.weights, images)
            bar.progress(2 / 3, text="Step 3 of 3: evaluating the recalibrated network on the test images…")
            return recalibrated(s, images)
    finally:
        bar.empty()


def _missing(dataset: str) -> str | None:
    """Why the training split cannot be read (None: it can); nothing is downloaded."""
    if data.available(dataset, "train"):
        return None
    return f"it needs the {dataset} training split: set `{data.ENV}` to a folder holding `{dataset}.npz`, then restart"


def section(s: Settings, results: dict):
    """The sidebar toggle and, when on, the accuracy without and with recalibration."""
    m = state.model(s.model)
    if recalibration_unavailable(m):  # no batch norm (or an adapter without the capability): nothing to offer
        return
    missing = _missing(m.dataset)
    with st.sidebar:
        st.markdown("**Batch norm**")
        on = st.toggle("Re-estimate batch-norm statistics", key="bn_recalibrate", disabled=bool(missing), help=HELP)
        if missing:
            st.caption(f"Unavailable: {missing}.")
            return
        if not on:
            return
        images = st.selectbox("Training images", IMAGES, index=IMAGES.index(batchnorm.DEFAULT_IMAGES),
                              format_func=lambda n: f"{n:,} (class-stratified)", key="bn_images")
    try:
        after = _with_progress(s, images)
    except pruning.PruningError as exc:
        st.error(str(exc))
        return
    before = results["evaluation"]
    st.markdown("**Batch-norm recalibration** — how much of the loss comes from stale normalisation statistics?")
    cols = st.columns(3)
    cols[0].metric("Without recalibration", f"{before.accuracy:.2%}",
                   help="The pruned model with the dense network's batch-norm statistics (the headline number).")
    cols[1].metric("With recalibration", f"{after.accuracy:.2%}", f"{after.accuracy - before.accuracy:+.2%} vs without",
                   border=True, help=HELP)
    cols[2].metric("Dense trained model", f"{state.dense(s.model, 'final', s.limit).accuracy:.2%}",
                   help="No pruning, trained weights θf, the dense network's own statistics.")
    st.caption(f"Statistics re-estimated on {images:,} class-stratified training images (seed 0) in one forward "
               f"pass in training mode, no gradient step; the running means and variances of the "
               f"{len(m.batch_norm_layers())} batch-norm layers change, nothing else. Same {after.n:,} test images.")

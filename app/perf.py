"""The "What this pruning buys" section: file size dense vs compressed sparse, and the measured
inference time of the dense model vs the pruned one on the fast path (pruning.models.torch_fast).

Drawn in a collapsed expander whose content runs only while it is open, so the live slider
path does not pay for it.
"""

import streamlit as st

import state
from state import Settings


def _fast():
    """pruning.models.torch_fast, imported on first use: it imports PyTorch, and the page's first
    elements go out before PyTorch is loaded (so the browser loads its code meanwhile)."""
    from pruning.models import torch_fast

    return torch_fast


def _size(n: int) -> str:
    return f"{n / 1024:,.1f} KB" if n < 1024 ** 2 else f"{n / 1024 ** 2:,.2f} MB"


@st.cache_data(max_entries=64, show_spinner=False)
def sizes(s: Settings) -> dict:
    return _fast().file_bytes(state.model(s.model), state.mask(s), s.weights)


@st.cache_data(max_entries=32, show_spinner="Timing the dense and the pruned model…")
def timing(s: Settings) -> dict:
    return _fast().benefit(state.model(s.model), state.mask(s), s.weights, s.limit)


def section(s: Settings):
    box = st.expander("What this pruning buys: file size and inference time", key="perf_open", on_change="rerun")
    if not box.open:
        return
    with box:
        b = sizes(s)
        cols = st.columns(3)
        cols[0].metric("File: dense float32", _size(b["dense"]))
        cols[1].metric("Dense, compressed (.npz)", _size(b["dense_npz"]), f"{b['dense'] / b['dense_npz']:.1f}x smaller",
                       delta_color="off", delta_arrow="off")
        cols[2].metric("Sparse CSR, compressed (.npz)", _size(b["sparse_npz"]),
                       f"{b['dense'] / b['sparse_npz']:.1f}x smaller", delta_color="off", delta_arrow="off")
        st.caption("np.savez_compressed of every parameter; CSR stores the kept values (float32), their column "
                   "indices and row pointers per tensor.")
        if not st.toggle("Measure inference time now", key="perf_time"):
            return
        t = timing(s)
        cols = st.columns(3)
        cols[0].metric("Dense forward pass", f"{t['dense_seconds'] * 1000:,.0f} ms")
        label = "Pruned (fast path)" if t["fast"] else "Pruned (masked, dense kernels)"
        cols[1].metric(label, f"{t['pruned_seconds'] * 1000:,.0f} ms")
        cols[2].metric("Speed-up", f"{t['speedup']:.2f}x")
        how = ("Fast path: dead units removed (their constant output folded into the next bias) and kernels at "
               f"least {_fast().CSR_SPARSITY:.0%} sparse multiplied as CSR; same predictions as the masked model."
               if t["fast"] else "No fast path is timed for this model (Keras, ResNet, uploaded programs): pruned "
               "weights are zeros in dense kernels, so pruning saves no time.")
        st.caption(f"Median of 3 runs over {t['images']:,} images on this server, measured just now. {how}")

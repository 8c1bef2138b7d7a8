"""The Export tab's downloads, and what each format saves on disk, in memory and in time, measured
(``pruning.models.onnx_measure``: dense vs pruned vs shrunk, onnxruntime on the CPU)."""

import threading
from collections import OrderedDict

import streamlit as st

import pruning
from pruning import data
from pruning.errors import PruningError
from pruning.models import export, onnx_export, onnx_measure, shrink, zoo
from pruning.models.adapter import adapter

import state
from state import Settings
import turns

REPEATS = 3  # timing rounds of a measurement (the median is shown)
SAVES = {  # format -> (what it saves, what it does not)
    "npz": ("the mask only: a few bits per weight, for this tool or your own code",
            "no weights: nothing is smaller or faster; apply it to the dense model"),
    "torch": ("the mask only, as tensors for torch.nn.utils.prune.custom_from_mask",
              "no weights; a masked PyTorch model keeps dense shapes, so it is not smaller or faster"),
    "keras": ("a ready-to-run Keras model with pruned weights exactly 0",
              "dense shapes: same file size, memory and time as the dense model (zeros compress, they do not vanish)"),
    "onnx": ("a framework-free model for onnxruntime and other runtimes, pruned weights exactly 0",
             "dense shapes: same file size, memory and time as the dense ONNX model"),
    "shrunk-safetensors": ("disk, memory and time: removed units and channels are gone, the tensors are smaller",
                           "weights pruned one by one inside surviving units stay (as zeros)"),
    "shrunk-keras": ("disk, memory and time: a Keras model rebuilt with fewer units and filters",
                     "weights pruned one by one inside surviving units stay (as zeros)"),
    "shrunk-onnx": ("disk, memory and time: the smaller network as ONNX",
                    "weights pruned one by one inside surviving units stay (as zeros)"),
}
SHRUNK = {"shrunk-safetensors", "shrunk-keras", "shrunk-onnx"}


def _shrinkable(s: Settings) -> str | None:
    """None if the shrunk formats can be built for ``s``, else why not (one line)."""
    try:
        shrink.check(shrink.plan(state.model(s.model), state.mask(s)), state.mask(s))
    except PruningError as exc:
        return str(exc)
    return None


def downloads(s: Settings, stem: str) -> None:
    """One download button per format the model offers, each with what it saves and what not."""
    m = state.model(s.model)
    formats = export.offered(m)
    why_not = _shrinkable(s) if SHRUNK & set(formats) else None
    for i, fmt in enumerate(formats):
        if i % 3 == 0:  # rows of three, so that reading and tab order follow the list
            cols = st.columns(3)
        col = cols[i % 3]
        blocked = fmt in SHRUNK and why_not is not None
        col.download_button(export.FORMATS[fmt].doc, lambda fmt=fmt: state.exported(s, fmt),
                            f"{stem}{'-shrunk' if fmt in SHRUNK else ''}{export.SUFFIXES[fmt]}",
                            "application/octet-stream", key=f"dl_{fmt}", on_click="ignore", disabled=blocked)
        saves, not_ = SAVES[fmt]
        col.caption(f"Saves: {saves}. Does not: {not_}.")
        if fmt in export.HOLDS_WEIGHTS and s.weights != "final":
            trained = state.evaluation(s, "final").accuracy
            col.caption(f"Holds the trained weights × mask ({trained:.2%}).")
    if why_not:
        st.caption(f"Shrunk formats unavailable: {why_not}")
    if "onnx" in formats:
        st.caption(f"ONNX input: {onnx_export.exporter(m).INPUT}; output: logits.")
    if "shrunk-safetensors" in formats:
        st.caption("Shrunk .safetensors: `pruning.models.shrink_torch.load(path)` rebuilds the module "
                   "(the architecture is a JSON in the file's metadata; no pickle).")


KEPT = 16  # measurements kept for all sessions (the most recent ones)


@st.cache_resource(show_spinner=False)
def _store() -> dict:
    """Settings -> measurement, shared by every session.  Not ``st.cache_data``: a measurement is
    started by a button and drawn with a progress bar, which a cached function cannot update."""
    return {"lock": threading.Lock(), "results": OrderedDict()}


def _measured(s: Settings, progress) -> dict:
    """The measurement of ``s``: a stored one, or measured now (``progress(done, total, what)``)."""
    store = _store()
    with store["lock"]:
        if s in store["results"]:
            store["results"].move_to_end(s)
            return store["results"][s]
    result = _measure(s, progress)
    with store["lock"]:
        store["results"][s] = result
        while len(store["results"]) > KEPT:
            store["results"].popitem(last=False)
    return result


def _measure(s: Settings, progress) -> dict:
    m, mask = state.model(s.model), state.mask(s)
    x, _ = state.test_images(m.dataset)
    prepared = m.prepare(x)
    engine = {"dense": m.logits({}, "final", prepared),
              "pruned": m.logits(pruning.masked_weights(m, mask), "final", prepared)}
    rows = onnx_measure.measure(m, mask, x, engine, repeats=REPEATS, progress=progress)
    suffix = adapter(m).suffix
    dense_file = zoo.ZOO / s.model / f"final{suffix}"
    native = {"dense": dense_file.stat().st_size if dense_file.is_file() else None,
              "pruned": len(state.exported(s, "keras")) if "keras" in export.offered(m) else None,
              "shrunk": None}
    if all("error" not in r for r in rows):
        native["shrunk"] = len(state.exported(s, export.SHRUNK[m.framework]))
    return {"rows": rows, "native": native, "suffix": suffix}


def _table(result: dict) -> list:
    out = []
    for r in result["rows"]:
        if "error" in r:  # said in words by ``summary``
            continue
        native = result["native"][r["variant"]]
        out.append({"model": r["variant"],
                    f"{result['suffix']} file (MB)": "mask only" if native is None else f"{native / 1e6:.3f}",
                    "ONNX file (MB)": round(r["onnx_bytes"] / 1e6, 3),
                    "stored parameters": r["parameters"], "nonzero": r["nonzero"],
                    "weights in memory (MB)": round(r["weight_bytes"] / 1e6, 3),
                    f"onnxruntime, {r['images']:,} images (ms)": round(r["seconds"] * 1e3, 1),
                    "same as engine": r["same_argmax"],
                    "max |Δ logit|": f"{r['max_abs_diff']:.1e}"})
    return out


def savings(s: Settings) -> None:
    """The measured comparison, computed on request (it exports three ONNX models and times them)."""
    m = state.model(s.model)
    if not export.own(m):
        st.caption("Size and speed are measured for the zoo's models; an uploaded model is exported as "
                   "its mask or Keras file only.")
        return
    st.markdown("**What each export saves, measured.** A masked model keeps the dense shapes, so its file, "
                "memory and onnxruntime time match the dense model's; only the shrunk model, whose removed "
                "units and channels are gone, is smaller and faster.")
    key = f"measure_{hash(s)}"
    if st.button("Measure file size and onnxruntime speed (dense, pruned, shrunk)", key="measure_exports"):
        st.session_state[key] = True
    if not st.session_state.get(key):
        return
    bar = st.empty()

    def progress(done, total, what):
        bar.progress(done / total, text=f"Measuring: {what} ({done} of {total} steps: three ONNX exports, "
                                        f"then {REPEATS} timing rounds over the whole test set)")

    try:
        with turns.aside():  # a long task the student asked for: the other pages go on meanwhile
            result = _measured(s, progress)
    except data.DatasetUnavailable as exc:
        st.warning(f"Cannot measure: {exc}")
        return
    finally:
        bar.empty()
    st.dataframe(_table(result), hide_index=True)
    st.markdown(summary(result["rows"]))
    r = result["rows"][0]
    st.caption(f"onnxruntime with {r['threads']} CPU thread, batches of {r['batch']:,}, median of {REPEATS} passes "
               f"over the {r['images']:,} test images, the three models taking turns; logits of the pruned and shrunk "
               "models are compared with the engine's pruned model, the dense one's with the dense model. "
               "Times depend on this machine's load.")


def summary(rows: list) -> str:
    """The measured rows in plain words: what the pruned and the shrunk export save over the dense one."""
    by = {r["variant"]: r for r in rows}
    dense = by["dense"]

    def versus(r):
        return (f"{r['onnx_bytes'] / dense['onnx_bytes']:.0%} of the dense file size, "
                f"{r['parameters'] / dense['parameters']:.0%} of its stored parameters and weight memory, "
                f"{r['seconds'] / dense['seconds']:.2f}× its time")

    text = f"Measured: the pruned (masked) ONNX model has {versus(by['pruned'])}"
    if "error" in by["shrunk"]:
        return text + "; no shrunk model (nothing to shrink at this setting)."
    return text + f"; the shrunk one has {versus(by['shrunk'])}."

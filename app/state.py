"""Cached wrappers around the engine, keyed on plain settings.

Zoo models and data are shared resources (``st.cache_resource``; never mutated), uploaded models
live in their visitor's ``st.session_state`` only; results are
``st.cache_data`` keyed on a ``Settings`` tuple, so moving a control back to a value already
seen costs nothing and each browser session only keeps its own settings in its widgets.
"""

import hashlib
import os
import secrets
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st

import pruning
from pruning.uploads import byo, sandbox
from pruning import data
from pruning.models import export
from pruning.models.adapter import adapter
from pruning.core import readouts
from pruning.core.prune import resolve_strategy

from coalesce import Coalescer

MAX_MODELS = int(os.environ.get("PRUNING_MAX_MODELS", "3"))  # zoo models held at once (least recently used go)
CONTROL_IMAGES = int(os.environ.get("PRUNING_CONTROL_IMAGES", "1000"))  # the controls' stratified subset
_once = Coalescer()  # identical engine calls of concurrent sessions computed once
# Evaluations running at once, all sessions together (PRUNING_EVALUATIONS; default: the cores this server may use):
# more would not finish sooner on a CPU, but each holds its own activations (a CIFAR ResNet's: hundreds of MB).
_slots = threading.BoundedSemaphore(int(os.environ.get("PRUNING_EVALUATIONS", "0")) or len(os.sched_getaffinity(0)))


def _evaluate(m, mask: pruning.Mask | None, weights: str, limit: int | None) -> pruning.Evaluation:
    """``pruning.evaluate`` in one of the server's evaluation slots, through the adapter's quicker
    evaluation where it has one (the zoo's PyTorch MLPs: ``torch_fast``'s compiled plan, the same
    predictions, tests/test_fast.py; a fraction of the CPU)."""
    with _slots:
        quick = adapter(m).quick_evaluation(m)
        if quick is not None:
            return quick(m, mask, weights, limit)
        return pruning.evaluate(m, mask, weights, limit=limit)


class Settings(NamedTuple):
    """Everything that defines one pruned model and its evaluation."""

    model: str
    strategy: str = "large_final"
    scope: str = "global"
    granularity: str = "weight"
    sparsity: float = 0.896  # fraction pruned, 0..1
    weights: str = "final"  # the weight set the mask is applied to
    limit: int | None = None  # evaluation images (None = the whole test split)

    @property
    def criterion(self) -> str:
        return resolve_strategy(self.strategy, self.scope)[0]


@st.cache_data(ttl=20, show_spinner=False)
def catalogue() -> list:
    """The zoo's rows, re-read every 20 s so that newly added models appear by themselves."""
    return pruning.catalogue()


@st.cache_resource(show_spinner="Loading the model…", max_entries=MAX_MODELS)
def _zoo_model(name: str):
    """At most MAX_MODELS zoo models stay loaded (least recently used dropped): a server that every
    zoo model was visited on keeps its memory bounded.  Never mutated."""
    return _once(("model", name), lambda: pruning.load_model(name))


UPLOAD = "upload:"  # names of uploaded models: "upload:" + a digest of a per-session secret, the files, the dataset
MAX_UPLOADS = sandbox.Limits.from_env().max_uploads  # per browser session (PRUNING_MAX_UPLOADS)


def _uploads() -> dict:
    """This browser session's uploaded models: name -> (model, catalogue row).  They live in its
    ``st.session_state`` only: another session cannot reach them, even knowing the name."""
    return st.session_state.setdefault("_uploaded_models", {})


def model(name: str):
    """A zoo model (shared, read-only), or one of this session's uploaded models."""
    if name.startswith(UPLOAD):
        mine = _uploads()
        if name not in mine:
            raise pruning.PruningError("this uploaded model is not in this browser session: upload it again")
        return mine[name][0]
    return _zoo_model(name)


def _secret() -> bytes:
    """A per-session secret: in uploads' names (no cached result of an upload is ever shared between
    sessions) and naming the session's own sandboxed worker."""
    return st.session_state.setdefault("_upload_secret", secrets.token_bytes(16))


def register_upload(final, init, dataset: str) -> str:
    """Check and load an uploaded model file (and optional θ0 file) into this session; its name for
    ``Settings``.  The file is read and run only in this session's sandboxed worker process
    (``pruning.uploads.sandbox``).  Raises PruningError (one line) for a refused or broken file."""
    parts = [_secret(), final.getvalue(), init.getvalue() if init else b"-", dataset.encode()]
    name = UPLOAD + hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    mine = _uploads()
    if name not in mine:
        m = pruning.load_upload(final, dataset, init, owner=_secret().hex())
        total, prunable = readouts.parameter_count(m)
        try:
            accuracy = pruning.evaluate(m, limit=readouts.default_limit(dataset, str(m.device))).accuracy
        except BaseException:  # its files and the engine's caches must not outlive a refused model
            m.close()
            byo.forget()
            raise
        row = {"name": name, "framework": m.framework, "dataset": dataset, "architecture": f"your {m.name}",
               "parameters": total, "prunable": prunable, "test_accuracy": accuracy}
        mine[name] = (m, row)
        while len(mine) > MAX_UPLOADS:
            drop_upload(next(iter(mine)))
    return name


def drop_upload(name: str) -> None:
    """Discard one of this session's uploads (replaced or removed): its files, the engine caches
    that would keep it alive (``pruning.uploads.byo.forget``), and the session's worker once none is left."""
    dropped = _uploads().pop(name, None)
    if dropped is not None:
        dropped[0].close()
        byo.forget()
        if not _uploads():
            sandbox.pool().release(_secret().hex())


def display_name(name: str) -> str:
    """The zoo name, or "your <file name>" for an uploaded model."""
    mine = _uploads() if name.startswith(UPLOAD) else {}
    return mine[name][1]["architecture"] if name in mine else name


def uploaded_rows(names: list) -> list:
    """Catalogue rows of this session's uploaded models still held, in ``names`` order."""
    mine = _uploads()
    return [mine[n][1] for n in names if n in mine]


@st.cache_resource(show_spinner=False)
def test_images(dataset: str):
    """(x, y) of the test split, uint8, read-only."""
    return data.load(dataset, "test")


def mask(s: Settings, strategy: str | None = None) -> pruning.Mask:
    """The mask of ``s`` (or of another strategy at the same sparsity, scope and granularity).
    Cheap: the engine caches each ranking, so only the cut at the new sparsity is recomputed."""
    strategy = strategy or s.strategy
    fixed = pruning.resolve_alias(strategy)[1]  # an alias fixes its scope
    if s.scope == "sensitivity" and not fixed:  # each layer at its budget
        return pruning.compute_mask(model(s.model), strategy, scope="sensitivity", granularity=s.granularity,
                                    budgets=budgets(s.model, s.sparsity))
    scope = None if fixed else s.scope
    sparsity = None if readouts.fixed_sparsity(s.granularity) is not None else s.sparsity
    return pruning.compute_mask(model(s.model), strategy, sparsity, scope=scope, granularity=s.granularity)


def evaluation(s: Settings, weights: str | None = None, strategy: str | None = None) -> pruning.Evaluation:
    """Accuracy of the mask of ``s`` (or of ``strategy``) on weight set ``weights`` (default s.weights)."""
    return _evaluation(s, weights or s.weights, strategy or s.strategy)  # one cache key per evaluation


@st.cache_data(max_entries=512, show_spinner=False)
def _evaluation(s: Settings, weights: str, strategy: str) -> pruning.Evaluation:
    return _once(("evaluation", s, weights, strategy),
                 lambda: _evaluate(model(s.model), mask(s, strategy), weights, s.limit))


def control(s: Settings) -> Settings:
    """``s`` evaluated on a class-stratified subset of at most CONTROL_IMAGES test images: the
    controls (random mask, the other weight sets) cost a fraction of the headline evaluation, so a
    slider move costs little more than one full evaluation; the page shows each number's n."""
    return s if s.limit is not None and s.limit <= CONTROL_IMAGES else s._replace(limit=CONTROL_IMAGES)


def accuracy_on(s: Settings, c: Settings) -> float:
    """The accuracy of ``s``'s mask on the control subset of ``c``: read off the headline evaluation's
    predictions when they cover those images (no extra evaluation), else evaluated."""
    if c == s:
        return evaluation(s).accuracy
    ev = evaluation(s)
    y = test_images(model(s.model).dataset)[1]
    sub = data.stratified_indices(y, c.limit)  # sorted positions in the test split, as ev.indices
    where = np.minimum(np.searchsorted(ev.indices, sub), len(ev.indices) - 1)
    if not np.array_equal(ev.indices[where], sub):
        return evaluation(c, s.weights).accuracy
    return float(np.mean(ev.predictions[where] == y[sub]))


@st.cache_data(max_entries=64, show_spinner=False)
def overlap(a: Settings, b: Settings) -> dict:
    """``pruning.compare_masks`` of the masks of two settings of the same model: kept weights and
    the Jaccard overlap, overall and per layer."""
    return pruning.compare_masks(mask(a), mask(b))


@st.cache_data(max_entries=64, show_spinner=False)
def dense(name: str, weights: str = "final", limit: int | None = None) -> pruning.Evaluation:
    return _once(("dense", name, weights, limit), lambda: _evaluate(model(name), None, weights, limit))


@st.cache_data(max_entries=128, show_spinner=False)
def report(s: Settings) -> dict:
    return pruning.report(mask(s))


@st.cache_data(max_entries=128, show_spinner=False)
def nearly_empty(s: Settings) -> list:
    return readouts.nearly_empty_layers(mask(s))


@st.cache_data(max_entries=128, show_spinner=False)
def size(s: Settings) -> dict:
    return readouts.model_size(model(s.model), mask(s))


@st.cache_data(max_entries=64, show_spinner=False)
def histogram(s: Settings, layer: str) -> dict:
    """``readouts.weight_histogram`` (60 bins), from each weight's bin found once per layer: a slider
    move only counts the kept weights per bin (no sort of the layer's weights per move)."""
    keep = np.asarray(mask(s)[layer], dtype=bool).reshape(-1)
    out = {}
    for which, (edges, where, total) in _bins(s.model, layer).items():
        kept = np.bincount(where[keep], minlength=len(total))
        out[which] = {"edges": edges, "kept": kept, "pruned": total - kept}
    return out


@st.cache_resource(max_entries=16, show_spinner=False)
def _bins(name: str, layer: str, bins: int = 60) -> dict:  # bins <= 256: one byte per weight
    """weight set -> (edges, the bin of each weight, the weights per bin) of one tensor, binned as
    np.histogram does: bin i holds edges[i] <= w < edges[i+1], the last bin also its right edge."""
    m, out = model(name), {}
    for which in ("final", "init"):
        if which in m.states:
            w = np.asarray(m.weights(which)[layer], dtype=np.float64).reshape(-1)
            edges = np.histogram_bin_edges(w, bins=bins)
            where = np.minimum(np.searchsorted(edges, w, side="right") - 1, bins - 1).astype(np.uint8)  # 1 byte each
            out[which] = (edges, where, np.bincount(where, minlength=bins))
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def sample(s: Settings, layer: str, max_points: int = 20000) -> dict:
    return readouts.weight_sample(model(s.model), mask(s), layer, max_points)


@st.cache_data(max_entries=64, show_spinner=False)
def first_layer(s: Settings) -> dict | None:
    shape = data.DATASETS[model(s.model).dataset]["shape"]
    return readouts.first_layer_images(model(s.model), mask(s), image_shape=shape[:2])


@st.cache_data(max_entries=64, show_spinner=False)
def changes(s: Settings) -> dict:
    return readouts.compare(dense(s.model, s.weights, s.limit), evaluation(s))


def curves(s: Settings) -> dict | None:
    """Precomputed accuracy curves of the chosen criterion and the comparisons (None: no sweep)."""
    criterion, scope = resolve_strategy(s.strategy, s.scope)
    return _curves(s.model, criterion, scope, s.granularity, s.weights)


@st.cache_data(ttl=20, show_spinner=False)
def _curves(name: str, criterion: str, scope: str, granularity: str, weights: str) -> dict | None:
    rows = readouts.sweep(name)
    if rows is None:
        return None
    names = list(dict.fromkeys([criterion, "large_final", "random"]))
    found = readouts.sweep_curves(rows, names, scope, granularity, weights)
    if found and "random" not in found:  # random is scope-independent in expectation: borrow the other
        other = [x for x in pruning.SCOPES if x != scope][0]
        borrowed = readouts.sweep_curves(rows, ["random"], other, granularity, weights)
        if borrowed:
            found["random_other_scope"] = borrowed["random"]
    return found


def _written(write, suffix: str) -> bytes:
    """Bytes of a file written by an engine function that takes a path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"export{suffix}"
        write(path)
        return path.read_bytes()


def exported(s: Settings, fmt: str) -> bytes:
    """The file of one export format (``pruning.models.export.FORMATS``: npz, torch, keras) for ``s``."""
    return _written(lambda p: export.FORMATS.get(fmt)(model(s.model), mask(s), p), export.SUFFIXES[fmt])


def report_csv(s: Settings) -> bytes:
    return readouts.report_csv(report(s)).encode()


def live_curve(s: Settings, sparsities, strategy: str | None = None, weights: str | None = None) -> dict:
    """{"sparsity", "accuracy"} of evaluations of ``s`` at several sparsities (each one cached)."""
    accs = [evaluation(s._replace(sparsity=p), weights, strategy).accuracy for p in sparsities]
    return {"sparsity": list(sparsities), "accuracy": accs}


@st.cache_resource(show_spinner=False)
def _scanned() -> dict:
    """Zoo model name -> the sensitivity table computed on request (shared: the scan is deterministic)."""
    return {}


def sensitivity_table(name: str) -> dict | None:
    """The model's per-layer sensitivity table: ``pretrained/<name>/sensitivity.json`` when shipped, else
    one computed on request (``set_sensitivity_table``), else None.  An upload's lives in its session."""
    if name.startswith(UPLOAD):
        return st.session_state.get("_upload_scans", {}).get(name)
    return _shipped_table(name) or _scanned().get(name)


@st.cache_data(ttl=60, show_spinner=False)
def _shipped_table(name: str) -> dict | None:
    from pruning.experiments.zoo_sensitivity import shipped

    return shipped(name)


def set_sensitivity_table(name: str, table: dict) -> None:
    if name.startswith(UPLOAD):
        st.session_state.setdefault("_upload_scans", {})[name] = table
    else:
        _scanned()[name] = table


def budgets(name: str, sparsity: float) -> dict:
    """The sensitivity scope's per-layer budgets at overall ``sparsity``: derived from the model's
    sensitivity table (``pruning.suggest_budgets``), so the scope and the sparsity reproduce them."""
    table = sensitivity_table(name)
    if table is None:
        raise pruning.PruningError("scope 'sensitivity' needs this model's sensitivity scan: choose another scope, "
                                   "run the scan in the Sensitivity tab, then come back to this scope")
    return pruning.suggest_budgets(table, sparsity)

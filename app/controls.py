"""Sidebar controls: each ``*_ui`` draws its widgets and returns plain values."""

import math

import streamlit as st

import pruning
from pruning.models.adapter import ADAPTERS
from pruning.core.criteria import ALIAS_DOCS, MODEL_CRITERIA, model_criteria
from pruning.core.readouts import default_limit, fixed_sparsity

from bn_ui import IMAGES as BN_IMAGES
from state import Settings, catalogue, drop_upload, model, register_upload, uploaded_rows
import turns

PRESETS = (20.0, 55.78, 89.6, 99.33)  # lottery-ticket-pruner's levels, % pruned
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
SHORT_NAMES = {**DATASET_NAMES, "fashion_mnist": "Fashion"}  # for the narrow model picker
WEIGHT_LABELS = {"final": "trained θf", "init": "initial θ0 (supermask)", "signed-constant": "signed constant"}
GRANULARITIES = ("weight", "unit", "N:M")


def sparsity_grid() -> list:
    """Slider stops in % pruned: coarse where little changes, fine at high sparsity."""
    stops = [float(p) for p in range(0, 80)] + [80 + i / 2 for i in range(20)]
    stops += [90 + i / 10 for i in range(90)] + [99 + i / 100 for i in range(91)]
    return sorted({round(p, 2) for p in (*stops, *PRESETS)})


GRID = sparsity_grid()


def _rank(order: dict, key: str) -> int:
    return list(order).index(key) if key in order else len(order)


def model_label(row: dict) -> str:
    """e.g. "MNIST · PyTorch · lenet300 · 267k · 98.1%" (dataset, framework, architecture,
    parameters, dense test accuracy)."""
    dataset = SHORT_NAMES.get(row["dataset"], row["dataset"])
    framework = ADAPTERS[row["framework"]].label if row["framework"] in ADAPTERS else row["framework"]
    return (f"{dataset} · {framework} · {row['architecture']} · {row['parameters'] / 1000:,.0f}k"
            f" · {row['test_accuracy']:.1%}")


def sorted_models(rows: list) -> list:
    """Zoo rows grouped by dataset (MNIST, Fashion-MNIST, CIFAR-10), then framework (PyTorch first)."""
    return sorted(rows, key=lambda r: (_rank(DATASET_NAMES, r["dataset"]), r["dataset"],
                                       _rank(ADAPTERS, r["framework"]), r["name"]))


def upload_ui() -> str | None:
    """Your own model file (and optionally its θ0); its name once it loads, else None."""
    with st.expander("Use your own model"):
        final = st.file_uploader("Trained weights: .safetensors, .pt2 or .keras", key="upload_final",
                                 help="A state dict of a zoo architecture, a torch.export program or a Keras 3 "
                                      "model. Pickles (.pt, .pth, .pkl) are refused for safety.")
        init = st.file_uploader("Initial weights θ0 (optional, same format)", key="upload_init")
        dataset = st.selectbox("It classifies", list(DATASET_NAMES), format_func=DATASET_NAMES.get,
                               key="upload_dataset", persist_state="session")
        held = st.session_state.get("upload_held")  # (file ids, name) of the model the uploader holds
        ids = (final.file_id, init.file_id if init else None, dataset) if final is not None else None
        if held and held[0] == ids and uploaded_rows([held[1]]):
            return held[1]  # hash and check each file once
        if held:  # replaced or removed: this session lets the old model go
            drop_upload(held[1])
            del st.session_state["upload_held"]
        if final is None:
            return None
        try:
            with st.spinner("Checking the file…"), turns.aside():  # in the worker: the other pages go on
                name = register_upload(final, init, dataset)
        except pruning.PruningError as exc:
            st.error(f"{exc}")
            return None
        st.session_state.upload_held = (ids, name)
        return name


def model_ui() -> str | None:
    picker = st.container()
    uploaded = upload_ui()
    mine = st.session_state.setdefault("uploads", [])
    if uploaded and uploaded not in mine:  # a new upload: select it
        mine.append(uploaded)
        st.session_state.model = uploaded
    rows = uploaded_rows(mine) + sorted_models(catalogue())
    if not rows:
        st.error("The model zoo is empty: no pretrained/<name>/model.json found.")
        return None
    by_name = {r["name"]: r for r in rows}
    name = picker.selectbox("Model", list(by_name), format_func=lambda n: model_label(by_name[n]), key="model",
                            persist_state="session",
                            help="Grouped by dataset and framework; new zoo models appear by themselves.")
    row = by_name[name]
    picker.caption(f"`{name}`: {row['parameters']:,} parameters ({row['prunable']:,} prunable), dense test accuracy "
               f"{row['test_accuracy']:.2%}")
    return name


def criterion_ui(prefix: str = "", m=None) -> str:
    """``prefix``: the controls' key prefix ("" for the sidebar's setting A, B for the Compare tab's B);
    ``m``: the model, whose own learned criteria (MODEL_CRITERIA, e.g. learned_supermask) are offered."""
    names = [*pruning.CRITERIA, *(model_criteria(m) if m is not None else []), *pruning.ALIASES]
    if st.session_state.get(f"{prefix}strategy") not in (*names, None):  # a model without it
        st.session_state[f"{prefix}strategy"] = names[0]
    strategy = st.selectbox("Criterion", names, key=f"{prefix}strategy", persist_state="session",
                            help="How each weight is scored; the lowest scores are pruned first.")
    docs = {**{k: v.doc for k, v in {**pruning.CRITERIA, **MODEL_CRITERIA}.items()}, **ALIAS_DOCS}
    st.caption(docs[strategy])
    return strategy


def scope_ui(strategy: str, prefix: str = "") -> str:
    help_text = ("layer: every tensor pruned at the same rate; global: one ranking across all tensors; "
                 "sensitivity: each layer at its own budget, from the Sensitivity tab's scan.")
    fixed = pruning.resolve_alias(strategy)[1]
    if fixed:
        st.radio("Scope", pruning.SCOPES, index=pruning.SCOPES.index(fixed), horizontal=True, disabled=True,
                 key=f"{prefix}scope_fixed_{fixed}", help=help_text)
        st.caption(f"`{strategy}` fixes the scope to {fixed}.")
        return fixed
    return st.radio("Scope", pruning.SCOPES, horizontal=True, key=f"{prefix}scope", persist_state="session",
                    help=help_text)


def granularity_ui(prefix: str = "") -> str | None:
    """"weight", "unit" or an N:M pattern such as "2:4"; None (with a message) for a bad pattern."""
    kind = st.radio("Granularity", GRANULARITIES, horizontal=True, key=f"{prefix}granularity",
                    persist_state="session",
                    help="weight: any single weight; unit: whole neurons / filters; N:M: keep N of every M "
                         "consecutive weights (hardware-friendly; fixes the sparsity).")
    if kind != "N:M":
        return kind
    pattern = st.text_input("N:M pattern", "2:4", key=f"{prefix}nm", persist_state="session",
                            help="e.g. 2:4 keeps 2 of every 4 weights (50% sparse)")
    try:
        fixed_sparsity(pattern)
    except pruning.PruningError as exc:
        st.error(f"{exc}")
        return None
    return pattern.strip().replace(" ", "")


def weights_ui(available: list, prefix: str = "") -> str:
    return st.radio("Mask applied to", available, format_func=WEIGHT_LABELS.get, key=f"{prefix}weights",
                    persist_state="session",
                    help="Trained weights (ordinary pruning), the untrained initial weights (a supermask, "
                         "Zhou et al. 2019) or sign(θ0) × the layer's θ0 std (signed constant).")


def _slider_moved():
    st.session_state.sparsity_pct = st.session_state.sparsity_slider


def _number_typed():
    typed = st.session_state.sparsity_pct
    st.session_state.sparsity_slider = min(GRID, key=lambda p: abs(p - typed))


def _preset(value: float):
    st.session_state.sparsity_pct = st.session_state.sparsity_slider = value


def sparsity_ui(fixed: float | None) -> float:
    """Fraction pruned (0..1): a slider with fine stops at high sparsity, an exact number box and
    presets, kept in sync through session state.  ``fixed``: the sparsity an N:M pattern imposes."""
    st.session_state.setdefault("sparsity_pct", 89.6)
    st.session_state.setdefault("sparsity_slider", 89.6)
    _number_typed()  # the exact number rules: a shared link sets only it; user moves keep the two in step
    st.select_slider("Prune (% of weights)", GRID, key="sparsity_slider", persist_state="session",
                     on_change=_slider_moved,
                     format_func=lambda p: f"{p:g}%", disabled=fixed is not None,
                     help="Finer steps above 90%: 0.1 up to 99%, then 0.01.")
    st.number_input("exact %", min_value=0.0, max_value=99.9, step=0.01, format="%.2f", key="sparsity_pct",
                    persist_state="session", on_change=_number_typed, disabled=fixed is not None,
                    label_visibility="collapsed")
    cols = st.columns(2) * 2
    for col, p in zip(cols, PRESETS, strict=True):  # a 2 x 2 grid of the four presets
        col.button(f"{p:g}%", key=f"preset_{p}", on_click=_preset, args=(p,), disabled=fixed is not None,
                   width="stretch", help="lottery-ticket-pruner's pruning levels")
    if fixed is not None:
        st.caption(f"The N:M pattern fixes the sparsity at {fixed:.2%}.")
        return fixed
    return st.session_state.sparsity_pct / 100


def limit_ui(dataset: str, device: str) -> int | None:
    default = default_limit(dataset, device)
    options = [0, 5000, 2000, 1000, 500]  # 0: the whole test split
    label = {0: "full test set", 5000: "5,000 (stratified)", 2000: "2,000 (stratified)",
             1000: "1,000 (stratified)", 500: "500 (stratified)"}
    key = f"limit_{dataset}_{device}"  # a per-dataset default, remembered per session
    limit = st.selectbox("Evaluation images", options, index=options.index(default or 0), format_func=label.get,
                         key=key, persist_state="session",
                         help="A class-stratified subset keeps CIFAR-10 fast on a CPU.")
    return limit or None


def _one_of(options):
    """A link reader that takes only one of ``options()``: a widget's choices."""
    def read(text: str) -> str:
        if text not in options():
            raise ValueError(text)
        return text
    return read


def _percent(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return min(max(value, 0.0), 99.9)


def _flag(text: str) -> bool:
    if text not in ("True", "False"):  # as the address bar writes a toggle
        raise ValueError(text)
    return text == "True"


def _bn_images(text: str) -> int:
    if text not in {str(n) for n in BN_IMAGES}:
        raise ValueError(text)
    return int(text)


def _pattern(text: str) -> str:
    if fixed_sparsity(text) is None:  # PruningError (a ValueError) for a malformed pattern
        raise ValueError(text)
    return "".join(text.split())  # "2 : 4" -> "2:4"


B = "b_"  # key prefix of setting B's controls (the Compare tab)
# the settings a shared link carries, e.g. ?strategy=movement&sparsity_pct=97.35, each with its reader;
# setting B's (same model) as b_strategy, b_scope, ..., b_sparsity_pct
SETTING = {"strategy": _one_of(lambda: [*pruning.CRITERIA, *MODEL_CRITERIA, *pruning.ALIASES]),
           "scope": _one_of(lambda: pruning.SCOPES), "granularity": _one_of(lambda: GRANULARITIES),
           "nm": _pattern, "weights": _one_of(lambda: pruning.WEIGHT_SETS), "sparsity_pct": _percent}
LINKED = {"model": _one_of(lambda: [r["name"] for r in catalogue()]), **SETTING,
          **{B + key: read for key, read in SETTING.items()},
          "bn_recalibrate": _flag, "bn_images": _bn_images}  # the batch-norm toggle (models with batch norm)
MAX_LINKED = 100  # characters: a longer value in a link is ignored unread


def _from_link():
    """Once per session: start from the settings in the address bar.  A value that no control
    could take (unknown, malformed, not finite, too long) is ignored, never put in session state."""
    if st.session_state.setdefault("linked", False):
        return
    st.session_state.linked = True
    for key, read in LINKED.items():
        text = st.query_params.get(key)  # the last of repeated keys
        if text is None or len(text) > MAX_LINKED:
            continue
        try:
            st.session_state[key] = read(text)
        except ValueError:  # PruningError included
            continue


def _to_link():
    """Keep the address bar in step with the controls, so that it can be shared."""
    st.query_params.from_dict({key: str(st.session_state[key]) for key in LINKED
                               if key in st.session_state and not str(st.session_state[key]).startswith("upload:")})


def _b_defaults(a: Settings, available: list):
    """Setting B starts from the sidebar's setting A (a control B already has keeps its value)."""
    nm = ":" in a.granularity  # an N:M pattern
    defaults = {"strategy": a.strategy, "scope": a.scope, "granularity": "N:M" if nm else a.granularity,
                "nm": a.granularity if nm else st.session_state.get("nm", "2:4"), "weights": a.weights,
                "sparsity_pct": st.session_state.get("sparsity_pct", round(a.sparsity * 100, 2))}
    for key, value in defaults.items():
        st.session_state.setdefault(B + key, value)
    if st.session_state[B + "weights"] not in available:  # another model, without θ0
        st.session_state[B + "weights"] = a.weights


def compare_ui(a: Settings, available: list) -> Settings | None:
    """Setting B of the Compare tab: the model of ``a`` with B's own criterion, scope, granularity,
    weight set (one of ``available``) and sparsity; None (with a message) for a bad N:M pattern."""
    _b_defaults(a, available)
    cols = st.columns([3, 2, 3, 2, 2])
    with cols[0]:
        strategy = criterion_ui(B, model(a.model))
    with cols[1]:
        scope = scope_ui(strategy, B)
    with cols[2]:
        granularity = granularity_ui(B)
    with cols[3]:
        weights = weights_ui(available, B)
    with cols[4]:
        fixed = fixed_sparsity(granularity) if granularity else None
        st.number_input("Prune (%)", min_value=0.0, max_value=99.9, step=0.01, format="%.2f",
                        key=B + "sparsity_pct", persist_state="session", disabled=fixed is not None,
                        help="Setting B's share of weights pruned.")
        if fixed is not None:
            st.caption(f"The N:M pattern fixes the sparsity at {fixed:.2%}.")
    _to_link()  # B's values, defaults included, join the address bar
    if granularity is None:
        return None
    sparsity = fixed if fixed is not None else st.session_state[B + "sparsity_pct"] / 100
    return Settings(a.model, strategy, scope, granularity, round(sparsity, 6), weights, a.limit)


def sidebar_ui() -> Settings | None:
    """All controls; None when the model cannot be loaded or an input is invalid (a message says why)."""
    _from_link()
    with st.sidebar:
        name = model_ui()
        if name is None:
            return None
        try:
            m = model(name)
        except pruning.PruningError as exc:
            st.error(f"Cannot load {name}: {exc}")
            return None
        strategy = criterion_ui(m=m)
        scope = scope_ui(strategy)
        granularity = granularity_ui()
        available = [w for w in pruning.WEIGHT_SETS if w == "final" or "init" in m.states]
        weights = weights_ui(available)
        sparsity = sparsity_ui(fixed_sparsity(granularity) if granularity else None)
        if strategy in MODEL_CRITERIA:
            st.caption(MODEL_CRITERIA[strategy].note(m, sparsity))
        limit = limit_ui(m.dataset, str(m.device))
        st.caption("The address bar holds these settings: share it to show the same view.")
    _to_link()
    if granularity is None:
        return None
    return Settings(name, strategy, scope, granularity, round(sparsity, 6), weights, limit)

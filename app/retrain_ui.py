"""The Retrain tab: train the current mask for a few epochs from θ0 (the lottery ticket), from θf
(fine-tuning) and from a random re-initialisation, live, and compare the runs.

Training runs in this session's script thread (``pruning.training.retrain.retrain``); after every epoch
the engine calls back and the progress bar and the chart are redrawn.  A click on Cancel (or on
any other control) makes Streamlit end this script run at that redraw, so training stops at the
end of the current epoch and the epochs done stay on the page.  Each job is a dict in
``st.session_state`` (per browser session, never shared); the engine trains its own copy of the
network, so the cached model is never changed.
"""

import time

import streamlit as st

import pruning
from pruning import data
from pruning.training.retrain import retrain, untrainable

import charts
import state
from state import Settings
import turns

STARTS = {"init": "rewind to θ0 (lottery ticket)", "final": "fine-tune from θf",
          "random": "random re-initialisation", "early": "rewind to θk (late rewinding)"}
SHORT = {"init": "θ0 · lottery ticket", "final": "θf · fine-tune", "random": "random re-init",
         "early": "θk · late rewind"}
COLOURS = {"init": charts.BLUE, "final": charts.GREEN, "random": charts.GREY, "early": charts.PURPLE}  # Okabe-Ito
DEFAULT = ("init", "final", "random")
LIMITS = (0, 10000, 3000, 600)  # training examples; 0: the whole training split
LIMIT_LABELS = {0: "the whole training split", 10000: "first 10,000", 3000: "first 3,000", 600: "first 600 (demo)"}
JOB = "retrain_job"


class Stopped(Exception):
    """This job was cancelled or stopped while its (now orphaned) script thread was still training."""


def unavailable(s: Settings, m) -> dict:
    """Starting points this model cannot train from -> why."""
    upload = s.model.startswith(state.UPLOAD)
    why = {}
    if "init" not in m.states:
        why["init"] = ("this uploaded model has no θ0, so it cannot be rewound to it: upload its initial weights too "
                       "(the optional θ0 file in the sidebar)" if upload else "this model has no initial weights θ0")
    if "early" not in m.states:
        why["early"] = "this model has no early weights θk"
    if upload:
        why["random"] = "a random re-initialisation needs the zoo recipe's initialiser, which an uploaded file lacks"
    return why


def _missing_training_data(dataset: str) -> str | None:
    """None when the training split loads; else the reason, remembered for this session."""
    missing = st.session_state.setdefault("retrain_missing", {})
    if dataset not in missing:
        try:
            data.load(dataset, "train")
            missing[dataset] = None
        except pruning.DatasetUnavailable as exc:
            missing[dataset] = str(exc)
    return missing[dataset]


def tab(s: Settings):
    m = state.model(s.model)
    st.markdown("Train the pruned network for a few epochs, with the pruned weights held at exactly zero. "
                "**Rewind to θ0** gives Frankle & Carbin's *lottery ticket*; **fine-tune** continues from the "
                "trained weights θf; a **random re-initialisation** with the same mask is the control.")
    why = untrainable(m)
    if why:
        st.info(f"This model cannot be retrained here: {why}.")
        return
    missing = _missing_training_data(m.dataset)
    if missing:
        st.error(f"**Training data missing.** Retraining needs the {m.dataset} training split: {missing}. For "
                 f"example: `export {data.ENV}=/path/to/datasets`, then restart. The rest of the page works.")
    why = unavailable(s, m)
    for start in ("init", "random"):
        if start in why:
            st.info(f"{STARTS[start].capitalize()} is unavailable: {why[start]}.")
    options = [r for r in STARTS if r not in why]
    left, mid, right = st.columns([4, 1, 2])
    starts = left.multiselect("Start from", options, [r for r in DEFAULT if r in options], format_func=SHORT.get,
                              key="rt_starts", help="Each starting point is one training run of the same mask: "
                              + "; ".join(f"{SHORT[r]}: {STARTS[r]}" for r in options))
    epochs = mid.number_input("Epochs", min_value=1, max_value=20, value=2, step=1, key="rt_epochs")
    default = LIMITS.index(3000 if m.dataset == "cifar10" and str(m.device) == "cpu" else 0)
    limit = right.selectbox("Training examples", LIMITS, index=default, format_func=LIMIT_LABELS.get,
                            key=f"rt_limit_{m.dataset}", help="Fewer examples for a quick demonstration.")
    go_col, cancel_col, note = st.columns([1, 1, 4], vertical_alignment="center")
    go = go_col.button("Train", type="primary", key="rt_go", disabled=bool(missing) or not starts, width="stretch")
    cancel = cancel_col.button("Cancel", key="rt_cancel", width="stretch",
                               help="Stops at the end of the current epoch; the epochs done are kept.")
    note.caption("Runs one after another in this browser session; changing a control also stops training.")
    job = st.session_state.get(JOB)
    if job and job["status"] == "running":  # this script run interrupted it: a click on Cancel, or another control
        job["status"] = "cancelled" if cancel else "stopped"
    bar, chart, table = st.empty(), st.empty(), st.container()
    if go:
        job = _new_job(s, m, starts, int(epochs), limit or None)
        st.session_state[JOB] = job
        with turns.aside():  # a long task the student asked for: the other pages go on meanwhile
            _train(job, m, bar, chart)
    if job:
        _show(job, s, bar, chart, table)


def _new_job(s: Settings, m, starts: list, epochs: int, limit: int | None) -> dict:
    full = s._replace(limit=None)  # the training loop measures accuracy on the whole test split
    supermask = state.evaluation(full, "init").accuracy if "init" in m.states else None
    before = {"init": supermask, "final": state.evaluation(full, "final").accuracy}
    return {"settings": s, "starts": starts, "epochs": epochs, "limit": limit, "status": "running", "message": "",
            "dense": state.dense(s.model, "final", None).accuracy, "supermask": supermask,
            "runs": {r: {"history": [], "before": before.get(r), "seconds": [], "accuracy": None} for r in starts}}


def _train(job: dict, m, bar, chart):
    mask = state.mask(job["settings"])
    draws = iter(range(10 ** 6))  # a fresh chart key per redraw within this script run

    def on_epoch(record):
        if job["status"] != "running":  # cancelled or replaced: end this (orphaned) thread's training
            raise Stopped
        run["history"].append(record)
        run["seconds"].append(time.perf_counter() - run.pop("t"))
        run["t"] = time.perf_counter()
        _draw(job, bar, chart, f"rt_live_{next(draws)}")  # Streamlit stops this script run here if asked

    try:
        _draw(job, bar, chart, f"rt_live_{next(draws)}")
        for start in job["starts"]:
            if job["status"] != "running":
                raise Stopped
            run = job["runs"][start]
            run["t"] = time.perf_counter()
            run["accuracy"] = retrain(m, mask, rewind=start, epochs=job["epochs"], limit=job["limit"],
                                      on_epoch=on_epoch).accuracy
            run.pop("t", None)
        job["status"] = "done"
    except Stopped:
        return
    except pruning.DatasetUnavailable as exc:
        job["status"], job["message"] = "error", f"Training data missing: {exc}"
    except Exception as exc:  # an architecture the training loop does not know, for instance
        job["status"], job["message"] = "error", f"Training failed: {type(exc).__name__}: {exc}"


def _progress(job: dict) -> tuple:
    done = sum(len(run["history"]) for run in job["runs"].values())
    return done, len(job["starts"]) * job["epochs"]


def _draw(job: dict, bar, chart, key: str):
    done, total = _progress(job)
    current = next((r for r in job["starts"] if len(job["runs"][r]["history"]) < job["epochs"]), None)
    running = "Finishing…"
    if current:
        i = job["starts"].index(current)
        running = (f"Training {SHORT[current]}: epoch {len(job['runs'][current]['history']) + 1} of {job['epochs']}"
                   f" · run {i + 1} of {len(job['starts'])}")
    text = {"running": running,
            "done": f"Done: {total} epochs in {sum(sum(r['seconds']) for r in job['runs'].values()):.0f} s",
            "cancelled": f"Cancelled after {done} of {total} epochs",
            "stopped": f"Stopped after {done} of {total} epochs: a control changed",
            "error": job["message"]}[job["status"]]
    bar.progress(done / total, text=text)
    runs = {SHORT[r]: {**job["runs"][r], "colour": COLOURS[r]} for r in job["starts"]
            if job["runs"][r]["history"] or (r == current and job["status"] == "running")}  # begun
    alt = "Test accuracy per epoch of retraining. " + charts.describe_retrain_curves(runs, job["epochs"], job["dense"],
                                                                                     job["supermask"])
    chart.plotly_chart(charts.retrain_curves(runs, job["epochs"], job["dense"], job["supermask"]), key=key, alt=alt)


def _show(job: dict, s: Settings, bar, chart, table):
    _draw(job, bar, chart, "rt_chart")
    with table:
        if job["status"] == "error":
            st.error(job["message"])
        if job["settings"]._replace(limit=None) != s._replace(limit=None):  # (evaluation images do not matter)
            st.warning("These runs are for an earlier setting of the sidebar "
                       f"({job['settings'].strategy}, {job['settings'].sparsity:.2%} pruned); press Train for the "
                       "current mask.")
        cols = st.columns(len(job["starts"]))
        for col, start in zip(cols, job["starts"], strict=True):
            h = job["runs"][start]["history"]
            if h:
                last = h[-1]["accuracy"]
                col.metric(STARTS[start], f"{last:.2%}", f"{last - job['dense']:+.2%} vs dense",
                           help=f"Test accuracy after epoch {h[-1]['epoch']}.")
        st.dataframe(rows(job), hide_index=True, key="rt_table")
        limit = f"the first {job['limit']:,}" if job["limit"] else "all"
        st.caption(f"Test accuracy on the whole test split after each epoch; trained on {limit} training examples, "
                   f"seed 0. Dense: the unpruned trained model; untrained supermask: this mask on θ0, no training.")
        runs = {SHORT[r]: job["runs"][r] for r in job["starts"]}
        st.caption("**Chart as text:** " + charts.describe_retrain_curves(runs, job["epochs"], job["dense"],
                                                                           job["supermask"]))


def rows(job: dict) -> list:
    """The comparison table: one row per run, its test accuracy after each epoch and the final one
    against the dense model and the untrained supermask."""
    out = []
    for start in job["starts"]:
        run = job["runs"][start]
        row = {"start": STARTS[start]} | {f"epoch {h['epoch']}": f"{h['accuracy']:.2%}" for h in run["history"]}
        if run["history"]:
            final = run["history"][-1]["accuracy"]
            row |= {"final": f"{final:.2%}", "vs dense": f"{final - job['dense']:+.2%}",
                    "vs supermask": "n/a" if job["supermask"] is None else f"{final - job['supermask']:+.2%}",
                    "s per epoch": f"{sum(run['seconds']) / len(run['seconds']):.1f}"}
        out.append(row)
    columns = list(dict.fromkeys(key for row in out for key in row))
    return [{key: row.get(key, "—") for key in columns} for row in out]  # "—": not trained (cancelled)

"""The IMP rounds tab: a precomputed run of iterative magnitude pruning played round by round.

Frankle & Carbin 2019 ("The Lottery Ticket Hypothesis"): train, prune 20% of each layer's remaining
weights by magnitude (the output layer 10%), rewind the survivors to θ0, train again; the control
trains each round's mask from a fresh random initialisation.  The runs are shipped
(``pruning.load_imp_run``, made by ``python -m pruning reproduce imp-rounds``): nothing is trained
here, the player only reads them.  Live retraining of the sidebar's mask stays in the Retrain tab.

The player: a round slider (scrub), Step back / Step forward, and Play, which advances one round a
second inside a fragment (``st.fragment(run_every=...)``) until the last round or Pause.  The table
of all rounds sits under it, readable without playing.
"""

import streamlit as st

import pruning
from pruning import data
from pruning.core import readouts
from pruning.experiments.imp_runs import available
from pruning.experiments.imp_table import imp_table

import charts
import sections
import state
from state import Settings

ROUND, PLAYING, TIMER, FULL = "imp_round", "imp_playing", "imp_timer", "imp_full_run"
INTERVAL = 1.0  # seconds between rounds while playing


@st.cache_resource(max_entries=4, show_spinner=False)
def run(name: str) -> list:
    """The shipped run of seed 0 (read-only: shared between sessions)."""
    return pruning.load_imp_run(name)


def tick(round_now: int, last: int) -> tuple:
    """One step of Play: (the next round, still playing?).  Play stops on the last round."""
    nxt = min(round_now + 1, last)
    return nxt, nxt < last


def _step(delta: int, last: int):
    """Step back / forward (a button callback): one round, and playing stops."""
    st.session_state[PLAYING] = False
    st.session_state[ROUND] = max(0, min(last, st.session_state.get(ROUND, 0) + delta))


def _play(last: int):
    """Play / Pause (a button callback); Play on the last round starts again from round 0."""
    playing = not st.session_state.get(PLAYING, False)
    if playing and st.session_state.get(ROUND, 0) >= last:
        st.session_state[ROUND] = 0
    st.session_state[PLAYING] = playing


def _stop():
    st.session_state[PLAYING] = False


def _layer_rows(r: dict) -> list:
    """``report``-style rows for the layer bars: name, sparsity of the round, weights."""
    return [{"name": n, "sparsity": s, "total": int(r["mask"][n].size)} for n, s in r["layer_sparsity"].items()]


def tab(s: Settings):
    shipped = available()
    if s.model not in shipped:
        st.info(f"Precomputed IMP runs ship for {', '.join(f'`{n}`' for n in shipped)}: pick one in the sidebar to "
                "play it round by round; live retraining of the current mask stays in the **Retrain** tab.")
        return
    st.markdown("**Iterative magnitude pruning, round by round** (Frankle & Carbin 2019). Each round prunes 20% of "
                "every layer's remaining weights by magnitude (the output layer 10%), rewinds the survivors to "
                "their initial values θ0 and trains again; the control trains the same mask from a fresh random "
                "initialisation. Precomputed: nothing is trained here (live retraining: the **Retrain** tab).")
    rounds = run(s.model)
    st.session_state[FULL] = True  # the fragment below advances only on its own (timer) reruns
    playing = st.session_state.get(PLAYING, False)
    st.session_state[TIMER] = playing
    st.fragment(run_every=INTERVAL if playing else None)(_player)(s, rounds)
    rows = imp_table(rounds)
    st.subheader("All rounds")
    st.dataframe(charts.imp_rounds_table(rows), hide_index=True, key="imp_table",
                 height=35 * (len(rows) + 1) + 3)  # every round visible without scrolling
    st.caption("Accuracy on the test set at the early-stopping iteration (the least validation loss, on 5,000 "
               "held-out training images); 'censored': the least loss was the last measurement, so training "
               "longer might stop later. Each run: 1,500 iterations on 10,000 training images (a CPU budget; the "
               "protocol and three seeds: docs/reproductions.md). Table as text: `python -m pruning imp-rounds "
               f"--model {s.model}`.")


def _player(s: Settings, rounds: list):
    last = rounds[-1]["round"]
    full = st.session_state.pop(FULL, False)
    if st.session_state.get(PLAYING, False) and not full:  # a timer tick: the next round
        st.session_state[ROUND], st.session_state[PLAYING] = tick(st.session_state.get(ROUND, 0), last)
    if st.session_state.get(PLAYING, False) != st.session_state.get(TIMER, False):
        st.rerun()  # Play pressed or the last round reached: start or stop the timer (set on a full run)
    st.session_state[ROUND] = max(0, min(last, st.session_state.get(ROUND, 0)))
    playing = st.session_state.get(PLAYING, False)
    back, play, forward, _ = st.columns([1, 1, 1, 3])
    back.button("Step back", key="imp_back", icon=":material/skip_previous:", on_click=_step, args=(-1, last),
                disabled=st.session_state[ROUND] == 0, width="stretch")
    play.button("Pause" if playing else "Play", key="imp_play", on_click=_play, args=(last,), type="primary",
                icon=":material/pause:" if playing else ":material/play_arrow:", width="stretch")
    forward.button("Step forward", key="imp_forward", icon=":material/skip_next:", on_click=_step, args=(1, last),
                   disabled=st.session_state[ROUND] == last, width="stretch")
    r = st.slider("Round", 0, last, key=ROUND, on_change=_stop, help="Round 0 is the dense network.")
    now = rounds[r]
    rows = imp_table(rounds)
    st.markdown(f"**Round {r} of {last}**: {1 - now['sparsity']:.1%} of the weights remaining."
                + ("" if now["random"] is None else
                   f" Ticket {rows[r]['ticket_accuracy']:.2%}, random re-initialisation "
                   f"{rows[r]['random_accuracy']:.2%} (test accuracy at early stopping)."))
    curve, bars = st.columns([3, 2])
    with curve:
        sections.show_chart(charts.imp_rounds(rows, r), "imp_curve", "Winning ticket against random "
                            "re-initialisation over the rounds", charts.describe_imp_rounds(rows, r),
                            lambda: charts.imp_rounds_table(rows))
    with bars:
        layers = _layer_rows(now)
        sections.show_chart(charts.layer_sparsity(layers), "imp_layers", f"Share of each weight tensor pruned in "
                            f"round {r}", charts.describe_layer_sparsity(layers),
                            lambda: charts.layer_sparsity_table(layers))
    m = state.model(s.model)
    shape = data.DATASETS[m.dataset]["shape"][:2]
    units = readouts.first_layer_images(m, rounds[-1]["mask"], image_shape=shape)["units"]
    images = readouts.first_layer_images(m, now["mask"], image_shape=shape, units=units)
    sections.show_chart(charts.first_layer(images), "imp_first", f"The first layer's masks in round {r}",
                        charts.describe_first_layer(images))
    st.caption("Which pixels each hidden unit still sees in this round (white = kept): the same units in every "
               "round (those keeping the most inputs in the last round). The first panel shows, per pixel, the share "
               "of all units keeping it.")

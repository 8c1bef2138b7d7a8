"""One row per round of a precomputed IMP run (``load_imp_run``): the numbers Frankle & Carbin 2019
plot in Figures 3-4, read at the early-stopping iteration (the minimum validation loss).

    rows = imp_table(pruning.load_imp_run("mnist-lenet300-torch"))
    rows[3]  # {"round": 3, "remaining": 0.513, "ticket_accuracy": 0.9615, ...}

``*_censored``: the minimum validation loss was the last measurement, so the true early-stopping
iteration may be later.  Round 0 is the dense network: it has no random re-initialisation (None).
"""


def imp_table(rounds: list) -> list:
    """Plain rows: round, sparsity, remaining (share of weights kept), and per ticket / random
    re-initialisation the test accuracy and the iteration at early stopping and whether it is censored."""
    rows = []
    for r in rounds:
        row = {"round": r["round"], "sparsity": r["sparsity"], "remaining": 1 - r["sparsity"]}
        for side in ("ticket", "random"):
            stop = r[side]["early_stop"] if r[side] else None
            row[f"{side}_accuracy"] = stop["test_accuracy"] if stop else None
            row[f"{side}_early_stop"] = stop["iteration"] if stop else None
            row[f"{side}_censored"] = stop["censored"] if stop else None
        rows.append(row)
    return rows


def format_table(name: str, rows: list) -> str:
    """The rows as aligned text (``python -m pruning imp-rounds``)."""
    def it(row, side):
        n = row[f"{side}_early_stop"]
        return "-" if n is None else f"{n}{'+' if row[f'{side}_censored'] else ''}"

    def acc(a):
        return "-" if a is None else f"{a:.4f}"

    lines = [f"{name}: IMP round by round (Frankle & Carbin 2019), read at the early-stopping iteration "
             "(+: censored, the last measurement)",
             f"  {'round':>5} {'remaining':>9} {'ticket acc':>10} {'random acc':>10} {'ticket stop':>11} "
             f"{'random stop':>11}"]
    for row in rows:
        lines.append(f"  {row['round']:>5} {row['remaining']:>9.1%} {acc(row['ticket_accuracy']):>10} "
                     f"{acc(row['random_accuracy']):>10} {it(row, 'ticket'):>11} {it(row, 'random'):>11}")
    return "\n".join(lines) + "\n"

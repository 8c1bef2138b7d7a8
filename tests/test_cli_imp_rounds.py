"""``python -m pruning imp-rounds``: the table of a shipped IMP run, as text and JSON, and a one-line
error (exit 2) for a model without one."""

import io
import json

import pruning
from pruning.cli import main

MODEL = "fmnist-lenet300-torch"


def test_json_matches_the_shipped_run():
    out = io.StringIO()
    assert main(["imp-rounds", "--model", MODEL, "--json"], out) == 0
    rows = json.loads(out.getvalue())["rounds"]
    rounds = pruning.load_imp_run(MODEL)
    assert [r["round"] for r in rows] == list(range(len(rounds)))
    for row, r in zip(rows, rounds, strict=True):
        assert row["remaining"] == 1 - r["sparsity"]
        assert row["ticket_accuracy"] == r["ticket"]["early_stop"]["test_accuracy"]
        assert row["ticket_early_stop"] == r["ticket"]["early_stop"]["iteration"]
        if r["random"] is None:
            assert row["random_accuracy"] is None and r["round"] == 0
        else:
            assert row["random_accuracy"] == r["random"]["early_stop"]["test_accuracy"]
            assert row["random_early_stop"] == r["random"]["early_stop"]["iteration"]


def test_text_table_has_a_line_per_round():
    out = io.StringIO()
    assert main(["imp-rounds", "--model", MODEL], out) == 0
    lines = out.getvalue().splitlines()
    rounds = pruning.load_imp_run(MODEL)
    assert len(lines) == 2 + len(rounds)
    last = lines[-1].split()
    assert last[0] == str(rounds[-1]["round"])
    assert last[2] == f"{rounds[-1]['ticket']['early_stop']['test_accuracy']:.4f}"


def test_model_without_a_run_is_a_one_line_error(capsys):
    assert main(["imp-rounds", "--model", "cifar10-conv4-torch"], io.StringIO()) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no precomputed IMP run" in err and "mnist-lenet300-torch" in err

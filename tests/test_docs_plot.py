"""docs/plot_lottery_ticket.py reads the measured IMP table committed in docs/reproductions.md."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def load_script():
    spec = importlib.util.spec_from_file_location("plot_lottery_ticket", DOCS / "plot_lottery_ticket.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plot_reads_every_round_of_the_committed_table():
    plot = load_script()
    rows = plot.measured_rows((DOCS / "reproductions.md").read_text())
    assert rows[0][0] == 100.0 and rows[0][2] is None  # round 0: the dense network, no control
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    assert len(rows) == 13 and all(0 < r[1] <= 1 for r in rows) and all(0 < r[2] <= 1 for r in rows[1:])
    fig = plot.figure(rows)
    assert [len(trace.x) for trace in fig.data] == [13, 12]
    assert (DOCS / "lottery-ticket.png").is_file()

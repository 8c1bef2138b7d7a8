"""benchmarks/gpu.py without a GPU: its comparison fails beyond 1e-3, and its run reads the
supermask runs' progress from their logs."""

import json
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu  # noqa: E402


def results(tmp_path, name, device, accuracy, skipped=False):
    row = {"model": "m", "skipped": "no TensorFlow"} if skipped else \
        {"model": "m", "accuracy": {"dense": accuracy}, "live_seconds": 0.5}
    path = tmp_path / name
    path.write_text(json.dumps({"device": device, "models": [row]}))
    return str(path)


def test_the_comparison_passes_within_the_tolerance_and_fails_beyond(tmp_path, capsys):
    cpu = results(tmp_path, "cpu.json", "cpu", 0.7722)
    assert gpu.compare(cpu, results(tmp_path, "near.json", "GPU", 0.7720)) == 0
    assert "largest difference 0.0002" in capsys.readouterr().out
    assert gpu.compare(cpu, results(tmp_path, "far.json", "GPU", 0.7702)) == 1
    assert "| `m` | dense | 0.7722 | 0.7702 | 0.0020 |" in capsys.readouterr().out


def test_a_model_that_could_not_run_is_named_not_compared(tmp_path, capsys):
    cpu = results(tmp_path, "cpu.json", "cpu", 0.9)
    assert gpu.compare(cpu, results(tmp_path, "gpu.json", "GPU", None, skipped=True)) == 0
    assert "not run: no TensorFlow" in capsys.readouterr().out


def test_epochs_done_reads_a_runs_log(tmp_path):
    log = tmp_path / "keep-0.5-seed-0.log"
    assert gpu.epochs_done(log) == []
    log.write_text("\n".join(json.dumps({"epoch": e, "loss": 1.0, "accuracy": 0.5, "wall": 2.5 * e}) for e in (1, 2)))
    assert gpu.epochs_done(log) == [(1, 2.5), (2, 5.0)]

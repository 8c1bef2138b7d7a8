"""`python -m pruning reproduce tfmot`: the TF-MOT pruning tutorial (PolynomialDecay 50% -> 80% to the
end of fine-tuning).  Its quick path loads TensorFlow and fine-tunes (over a minute on the shared
2-core machine), so it is skipped unless PRUNING_SLOW_TESTS is set, to keep CI time down."""

import os

import pytest

from pruning.cli import main
from pruning.experiments.reproduce import EXPERIMENTS, TFMOT

slow = pytest.mark.skipif(not (os.environ.get("PRUNING_DATA_DIR") and os.environ.get("PRUNING_SLOW_TESTS")),
                          reason="fine-tunes a Keras model (over a minute on 2 cores): set PRUNING_DATA_DIR and "
                                 "PRUNING_SLOW_TESTS=1")


def test_tfmot_is_registered_with_the_tutorial_settings():
    assert "tfmot" in EXPERIMENTS
    assert TFMOT == {"initial": 0.5, "final": 0.8, "epochs": 2, "batch_size": 128, "validation_split": 0.1,
                     "frequency": 100}


@slow
def test_tfmot_quick_prunes_to_80_percent_and_reports_seeds(tmp_path):
    out = tmp_path / "tfmot.md"
    assert main(["reproduce", "tfmot", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "final sparsity 0.8000" in text and "0.9689" in text and "0.9726" in text
    assert " ± " in text and "2 seeds" in text and "Protocol differences from the source:" in text

#!/usr/bin/env bash
# A separate virtual environment for the lottery-ticket-pruner comparison (benchmarks/live.py,
# part b). lottery-ticket-pruner 0.8.1 is written for tf.keras (Keras 2); with TensorFlow >= 2.16
# that is the tf_keras package, selected with TF_USE_LEGACY_KERAS=1. Installing it here keeps the
# explorer's environment (Keras 3) untouched. Usage: bash benchmarks/setup_legacy.sh
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv-legacy
.venv-legacy/bin/python -m pip install -q --upgrade pip
.venv-legacy/bin/python -m pip install -q "tensorflow-cpu==2.21.0" "tf_keras==2.21.0" "lottery-ticket-pruner==0.8.1" \
  || .venv-legacy/bin/python -m pip install -q "tensorflow==2.21.0" "tf_keras==2.21.0" "lottery-ticket-pruner==0.8.1"
TF_USE_LEGACY_KERAS=1 .venv-legacy/bin/python -c "import lottery_ticket_pruner, tf_keras; print('lottery-ticket-pruner ready, tf_keras', tf_keras.__version__)"

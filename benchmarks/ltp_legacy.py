"""lottery-ticket-pruner's calc_prune_mask + apply_pruning + model.evaluate on LeNet-300-100.

Runs inside benchmarks/.venv-legacy (tf_keras, TF_USE_LEGACY_KERAS=1; see setup_legacy.sh), called
by live.py:  python ltp_legacy.py IN.npz SPARSITIES REPEATS  -> one JSON object on stdout.
IN.npz holds x (uint8 images), y, scale/offset of the zoo model's Rescaling layer and the
kernels and biases of θ0 and θf (fc1..fc3, Keras layout).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402
import lottery_ticket_pruner  # noqa: E402
from lottery_ticket_pruner import LotteryTicketPruner  # noqa: E402


PATCH = ("lottery-ticket-pruner 0.8.1 recognises a prunable layer by 'keras.layers' in its class's module; "
         "tf_keras's Dense lives in 'tf_keras.src.layers', so without a patch nothing is pruned. _prunable is "
         "patched to accept tf_keras layers as well (same test otherwise).")
_original = LotteryTicketPruner._prunable


def _prunable(self, layer, weights):
    if _original(self, layer, weights):
        return True
    return (len(weights.shape) > 1 and type(layer).__module__.startswith("tf_keras.src.layers")
            and type(layer).__name__ in self.prunable_layer_names)


LotteryTicketPruner._prunable = _prunable


def build(d, which):
    inputs = keras.Input((28, 28))
    x = keras.layers.Rescaling(float(d["scale"]), float(d["offset"]))(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(300, "relu", name="fc1")(x)
    x = keras.layers.Dense(100, "relu", name="fc2")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="fc3")(x))
    for name in ("fc1", "fc2", "fc3"):
        model.get_layer(name).set_weights([d[f"{which}.{name}.kernel"], d[f"{which}.{name}.bias"]])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def main():
    path, sparsities, repeats = sys.argv[1], [float(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
    d = dict(np.load(path))
    x, y = d["x"].astype(np.float32), d["y"].astype(np.int64)
    init, model = build(d, "init"), build(d, "final")
    final_weights = model.get_weights()
    out = {"tf_keras": keras.__version__,
           "lottery_ticket_pruner": getattr(lottery_ticket_pruner, "__version__", "0.8.1"),
           "images": int(len(y)), "patch": PATCH, "rows": []}
    for s in sparsities:
        for batch in (32, 10000):  # Keras's default batch size, and the whole test set at once
            times, acc = [], None
            for r in range(repeats + 1):  # the first run warms up
                model.set_weights(final_weights)
                pruner = LotteryTicketPruner(init)
                pruner.set_pretrained_weights(model)
                start = time.perf_counter()
                pruner.calc_prune_mask(model, s, "smallest_weights_global")
                pruner.apply_pruning(model)
                acc = model.evaluate(x, y, batch_size=batch, verbose=0)[1]
                if r:
                    times.append(time.perf_counter() - start)
            kernels = [model.get_layer(n).get_weights()[0] for n in ("fc1", "fc2", "fc3")]
            pruned = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
            out["rows"].append({"sparsity": s, "batch_size": batch, "seconds": float(np.median(times)),
                                "accuracy": float(acc), "actual_sparsity": pruned})
    print(json.dumps(out))


if __name__ == "__main__":
    main()

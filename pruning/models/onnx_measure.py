"""What an export saves, measured: file size, parameter count and onnxruntime CPU latency of the
dense, the pruned (masked) and the shrunk model side by side, on the full test set in the engine's
batches, with each one's predictions checked against the engine's.  Used by the explorer's Export
tab (app/export_ui.py) and benchmarks/live.py part h."""

import time

import numpy as np

from ..errors import PruningError
from . import onnx_export

VARIANTS = ("dense", "pruned", "shrunk")


def measure(model, mask, images: np.ndarray, engine_logits: dict, repeats: int = 3, threads: int = 1,
            progress=None) -> list:
    """One row per variant: its ONNX file's bytes, its parameters (stored / nonzero) and the bytes
    they take in memory (``weight_bytes``: float initializers, as a runtime holds them), the median
    of ``repeats`` wall times of onnxruntime on all ``images`` (``threads`` CPU threads, batches of
    ``model.batch_size``; the variants take turns in each round, so that load on the machine hits
    them alike), and the largest |logit difference| and argmax agreement with
    ``engine_logits[variant]`` (the engine's logits: dense, and masked, which the shrunk model
    must also give).  A variant that cannot be built (nothing to shrink) has ``error`` set.
    ``progress(done, total, what)``, when given, is called after each of the ``len(VARIANTS) +
    repeats`` stages (an export and its first run; a timing round)."""
    x = onnx_export.inputs(model, images)
    batch = getattr(model, "batch_size", 1000)
    rows, sessions, total = [], {}, len(VARIANTS) + repeats
    for i, variant in enumerate(VARIANTS, 1):
        row = {"variant": variant}
        try:
            data = onnx_export.to_bytes(model, None if variant == "dense" else mask, variant == "shrunk")
        except PruningError as exc:
            rows.append({**row, "error": str(exc)})
            if progress:
                progress(i, total, f"no {variant} model")
            continue
        sess = onnx_export.session(data, threads)
        out = onnx_export.run(sess, x, batch)  # also the warm-up
        ref = engine_logits["dense" if variant == "dense" else "pruned"]
        stored, nonzero, weight_bytes = _parameters(data)
        rows.append({**row, "onnx_bytes": len(data), "parameters": stored, "nonzero": nonzero,
                     "weight_bytes": weight_bytes,
                     "images": len(x), "batch": batch, "threads": threads,
                     "max_abs_diff": float(np.abs(out - ref).max()),
                     "same_argmax": bool((out.argmax(1) == ref.argmax(1)).all())})
        sessions[variant] = sess
        if progress:
            progress(i, total, f"exported and checked the {variant} model")
    times = {v: [] for v in sessions}
    for k in range(repeats):
        for variant, sess in sessions.items():
            start = time.perf_counter()
            onnx_export.run(sess, x, batch)
            times[variant].append(time.perf_counter() - start)
        if progress:
            progress(len(VARIANTS) + k + 1, total, f"timing round {k + 1} of {repeats}")
    for row in rows:
        if row["variant"] in times:
            row["seconds"] = float(np.median(times[row["variant"]]))
    return rows


def _parameters(data: bytes) -> tuple[int, int, int]:
    """(values stored in the graph's float initializers, how many of them are nonzero, their bytes:
    the memory a runtime holds for the weights)."""
    import onnx
    from onnx import numpy_helper

    stored = nonzero = nbytes = 0
    for init in onnx.load_from_string(data).graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and arr.size > 1:
            stored, nonzero, nbytes = stored + arr.size, nonzero + int(np.count_nonzero(arr)), nbytes + arr.nbytes
    return stored, nonzero, nbytes

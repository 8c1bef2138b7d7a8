"""An uploaded model that lives in a sandboxed worker: the server holds only numbers.

    model = load_upload(uploaded_file, "mnist", owner=session_id)  # parsed and checked in a worker
    pruning.evaluate(model, mask)                                  # the forward pass runs there too

``RemoteModel`` has the interface the engine uses (name, info, dataset, framework, specs,
output_name, states, weights, prepare, logits, warnings, device).  Its weight sets are plain
arrays copied out of the worker once (masks are computed here, from numbers); every forward pass
is a request to the owner's worker, which re-reads the file itself if it was replaced since.
Nothing the worker says is trusted: names, shapes and arrays are checked before use.
"""

import hashlib
import re
import secrets
from pathlib import Path
import tempfile
import time

import numpy as np

from .. import byo
from ...data import check_name
from ...models.adapter import adapter
from ...errors import PruningError
from ...fileio import sha256
from ...core.selection import TensorSpec
from .limits import too_many
from .pool import Pool, pool as default_pool

MAX_TENSORS = 10_000
WEIGHT_SETS = ("final", "init", "early")
NAME = re.compile(r"[\w./:-]{1,300}")  # a tensor name from a worker: nothing that markup could use
RECORD = ("epoch", "loss", "accuracy", "sparsity")  # what one epoch's progress holds
MAX_ANSWER = 4 * byo.MAX_BYTES  # bytes of arrays in the answer to an export or a training run


def _load_bytes(budget: int) -> int:
    """The most array bytes a load's answer may hold: every weight set of ``budget`` weights, as
    float64 at most, and as much again for the unit parameters (biases, batch norm: at most four
    per unit, and a unit has at least one weight, but in practice a small share)."""
    return min(MAX_ANSWER, len(WEIGHT_SETS) * 8 * budget * 2)


class Prepared:
    """A batch of evaluation images for a remote model; the worker prepares it once and keeps it."""

    def __init__(self, x: np.ndarray):
        self.x = np.ascontiguousarray(x)
        self.id = hashlib.sha256(repr(self.x.shape).encode() + self.x.tobytes()).hexdigest()[:20]

    def __len__(self) -> int:
        return len(self.x)


def _specs(reply: dict) -> dict:
    rows = reply.get("specs")
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_TENSORS:
        raise PruningError("the worker's answer is malformed (specs)")
    specs = {}
    for row in rows:
        ok = (isinstance(row, list) and len(row) == 4 and isinstance(row[0], str) and len(row[0]) <= 1000
              and all(isinstance(v, list) and all(type(d) is int and d >= 0 for d in v) for v in row[1:3])
              and (not row[2] or sorted(row[2]) == list(range(len(row[1]))))
              and isinstance(row[3], list) and len(row[3]) <= 4
              and all(isinstance(p, str) and NAME.fullmatch(p) and not byo.LINK_LIKE.search(p)
                      for p in [row[0], *row[3]]))
        if not ok or row[0] in specs:
            raise PruningError("the worker's answer is malformed (specs)")
        specs[row[0]] = TensorSpec(row[0], tuple(row[1]), tuple(row[2]), tuple(row[3]))
    return specs


def _states(arrays: dict, specs: dict) -> dict:
    """Weight set -> name -> array: the prunable tensors and their unit parameters (1-D, one value
    per output unit), each of the shape the specs say."""
    shapes = {name: spec.shape for name, spec in specs.items()}
    shapes.update({p: (spec.canonical_shape[0],) for spec in specs.values() for p in spec.unit_params})
    states = {}
    for key, arr in arrays.items():
        which, _, name = key.partition("/")
        if which not in WEIGHT_SETS or arr.shape != shapes.get(name) or arr.dtype.kind != "f":
            raise PruningError("the worker's answer is malformed (weights)")
        arr.setflags(write=False)
        states.setdefault(which, {})[name] = arr
    if "final" not in states or any(set(s) != set(shapes) for s in states.values()):
        raise PruningError("the worker's answer is malformed (weights)")
    return states


class RemoteModel:
    def __init__(self, name: str, dataset: str, files: dict, *, owner: str, directory=None,
                 architecture: str | None = None, pool: Pool | None = None):
        """Load ``files`` ({"final": path, maybe "init": path}) in ``owner``'s worker."""
        self.name, self.dataset, self.files, self.owner = name, dataset, dict(files), owner
        self.pool = pool or default_pool()
        self._directory = directory  # a TemporaryDirectory holding the files: removed with the model
        self.key = hashlib.sha256(f"{owner}\0{sorted(self.files.items())}".encode()).hexdigest()[:20]
        self.budget = self.pool.limits.upload_parameters
        self._load = {"op": "load", "key": self.key, "files": {k: str(v) for k, v in self.files.items()},
                      "dataset": dataset, "name": name, "architecture": architecture, "max_parameters": self.budget}
        with self.pool.worker(owner) as w:
            reply, arrays = self._loaded(w)
        self.specs = _specs(reply)
        self.states = _states(arrays, self.specs)
        self.output_name = reply.get("output_name") if reply.get("output_name") in self.specs else list(self.specs)[-1]
        self.framework = adapter(str(reply.get("framework"))[:20]).framework
        counts = reply.get("parameters")
        if not (isinstance(counts, list) and len(counts) == 2
                and all(type(c) is int and 0 <= c < 2**53 for c in counts)):
            raise PruningError("the worker's answer is malformed (parameters)")
        total, prunable = counts
        held = sum(int(np.prod(spec.shape)) for spec in self.specs.values())
        if max(prunable, held) > self.budget:  # the worker refuses first; this holds even if it did not
            raise PruningError(too_many(max(prunable, held), self.budget))
        info = reply.get("info") if isinstance(reply.get("info"), dict) else {}
        self.info = {"name": name, "framework": self.framework, "dataset": dataset, "source": "uploaded file",
                     "architecture": info.get("architecture") if isinstance(info.get("architecture"), str) else None,
                     "parameters": {"total": int(total), "prunable": int(prunable)},
                     "sha256": {k: sha256(v) for k, v in self.files.items()}}
        self.warnings = [str(w)[:300] for w in (reply.get("warnings") or [])][:10]
        self.static_batch = reply.get("static_batch") if type(reply.get("static_batch")) is int else None
        self.device = "cpu, sandboxed worker"

    def _loaded(self, w) -> tuple:
        """Make sure worker ``w`` holds this model (a fresh worker reads the files again)."""
        reply, arrays = w.request(self._load, timeout=w.limits.timeout_s, what="loading the model",
                                  max_bytes=_load_bytes(self.budget))
        w.loaded.add(self.key)
        return reply, arrays

    def weights(self, which: str = "final") -> dict:
        """The prunable tensors of one weight set (``states`` also holds their unit parameters)."""
        return {name: self.states[which][name] for name in self.specs}

    def prepare(self, x: np.ndarray) -> Prepared:
        return Prepared(x)

    def _call(self, header: dict, arrays: dict, what: str, **request) -> dict:
        """One request to this model in the owner's worker, restoring what a new worker lacks."""
        header = {**header, "key": self.key}
        for _ in range(2):
            with self.pool.worker(self.owner) as w:
                if self.key not in w.loaded:
                    self._loaded(w)
                x = arrays.get("__input__")
                if x is not None and (self.key, x.id) not in w.inputs:
                    w.request({"op": "prepare", "key": self.key, "input": x.id}, {"x": x.x},
                              timeout=w.limits.timeout_s, what=what)
                    w.inputs.add((self.key, x.id))
                sent = {k: v for k, v in arrays.items() if k != "__input__"}
                request.setdefault("timeout", w.limits.timeout_s)
                reply, out = w.request(header, sent, what=what, **request)
                if reply.get("missing"):  # the worker let it go: load or prepare again
                    w.loaded.discard(self.key)
                    w.inputs = {k for k in w.inputs if k[0] != self.key}
                    continue
                return out
        raise PruningError(f"{what} failed: the worker lost the model twice")

    def logits(self, prunable: dict, base: str, x: Prepared) -> np.ndarray:
        """Logits (n, classes), computed by the worker."""
        if base not in self.states:
            raise PruningError(f"this model has no {base!r} weights")
        out = self._call({"op": "logits", "input": x.id, "base": base}, {**prunable, "__input__": x}, "evaluation",
                         max_bytes=len(x) * 10 * 4)  # (n, 10) float32: check_forward made sure of 10 classes
        logits = out.get("logits")
        if logits is None or logits.ndim != 2 or len(logits) != len(x) or not 0 < logits.shape[1] <= 10_000:
            raise PruningError("the worker's answer is malformed (logits)")
        return logits

    def keras_bytes(self, prunable: dict) -> bytes:
        """The pruned Keras model as a .keras file, written by the worker."""
        out = self._call({"op": "keras_file"}, prunable, "the Keras export", max_bytes=MAX_ANSWER)
        data = out.get("file")
        if data is None or data.dtype != np.uint8 or data.ndim != 1:
            raise PruningError("the worker's answer is malformed (file)")
        return data.tobytes()

    def remote_retrain(self, mask, *, rewind="init", epochs=None, seed=0, limit=None, on_epoch=None):
        """``pruning.training.retrain.retrain`` run in the worker, epoch records streamed back to ``on_epoch``;
        wall-clock and CPU time are bounded by PRUNING_WORKER_TRAIN_S."""
        from ...core.masks import Mask
        from ...training.retrain import Run, check_rewind

        check_rewind(rewind, self)
        history, started = [], time.perf_counter()

        def progress(record):
            if not (isinstance(record, dict) and set(record) == set(RECORD)
                    and all(type(v) in (int, float) for v in record.values())):
                raise PruningError("the worker's answer is malformed (progress)")
            history.append(dict(record))
            if on_epoch is not None:
                on_epoch(dict(record))

        seconds, epochs = self.pool.limits.train_s, int(epochs or 1)
        header = {"op": "retrain", "rewind": rewind, "epochs": epochs, "seed": int(seed), "limit": limit,
                  "meta": dict(getattr(mask, "meta", {}))}
        with self.pool.training():  # at most max_workers - 1 uploads train at once: the others still evaluate
            weights = self._call(header, {k: np.asarray(v, bool) for k, v in mask.items()}, "training",
                                 timeout=seconds, cpu_s=seconds, on_progress=progress, max_progress=epochs,
                                 max_bytes=MAX_ANSWER)
        if not history or set(weights) != set(self.specs):
            raise PruningError("the worker's answer is malformed (training)")
        meta = dict(getattr(mask, "meta", {}), rewind=rewind, epochs=len(history))
        return Run(history[-1]["accuracy"], history, Mask(mask, meta), weights, time.perf_counter() - started)

    def close(self) -> None:
        """Forget the model in the worker and remove its files."""
        self.pool.forget(self.owner, self.key)
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


def _upload_name(upload) -> str:
    """The uploaded file's base name, printable and at most 100 characters with its suffix kept
    (it appears in messages and masks, and names the saved copy, so messages name it too)."""
    name = re.sub(r"[^\w.()+ -]", "_", Path(str(getattr(upload, "name", "upload"))).name)
    if not name.strip("."):
        return "upload"
    suffix = Path(name).suffix[:16]
    return name if len(name) <= 100 else name[: 100 - len(suffix)] + suffix


def _save(upload, directory: str, which: str) -> Path:
    """Write an upload's bytes (size checked first) to ``directory/which/<its name>``; nothing
    here parses them."""
    if not (hasattr(upload, "getvalue") or hasattr(upload, "read")):
        raise PruningError(f"expected an uploaded file (with getvalue() or read()), got {type(upload).__name__}")
    name = _upload_name(upload)
    size = getattr(upload, "size", None)
    if size is not None:
        byo.check_size(int(size), name)
    data = upload.getvalue() if hasattr(upload, "getvalue") else upload.read(byo.MAX_BYTES + 1)
    byo.check_size(len(data), name)
    path = Path(directory) / which / name
    path.parent.mkdir()
    path.write_bytes(data)
    return path


def load_upload(upload, dataset: str, init_upload=None, *, architecture: str | None = None,
                owner: str | None = None, pool: Pool | None = None) -> RemoteModel:
    """A web upload (an object with ``name``, ``size`` and ``getvalue()`` or ``read()``, such as
    Streamlit's UploadedFile), checked, loaded and evaluated in a sandboxed worker process.

    owner  whose worker runs it (a browser session's id); default: a worker of its own.
    Raises PruningError with one line for a refused or broken file, or a worker that broke a limit.
    """
    check_name(dataset)
    directory = tempfile.TemporaryDirectory(prefix="pruning-upload-")
    try:
        files = {"final": _save(upload, directory.name, "final")}
        if init_upload is not None:
            files["init"] = _save(init_upload, directory.name, "init")
        return RemoteModel(_upload_name(upload), dataset, files, owner=owner or secrets.token_hex(8),
                           directory=directory, architecture=architecture, pool=pool)
    except BaseException:
        directory.cleanup()
        raise

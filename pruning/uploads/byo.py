"""Bring your own model: load a user's file as an engine model, refusing unsafe or broken files.

    model = load_file_model("net.safetensors", "mnist", init_path="net-init.safetensors")
    # web uploads: pruning.load_upload (sandbox/remote.py) runs this in a sandboxed worker process

Accepted (judged by the file's bytes, not only its name; each adapter in ``models/adapter.py``
names the suffixes it reads and their readers in ``uploads/readers/``):
  .safetensors  a state dict of a zoo architecture (lenet300, lenet5, conv4, resnet20 of
                torch_nets.py), recognised from its keys and shapes or named with ``architecture``;
                inputs are preprocessed as for the zoo's models of the dataset (recipes.py).
  .pt2          a ``torch.export`` program (pt2_model.py: prunable tensors, input layout); only
                its plain tensors are read: pickled payloads, custom objects and compiled code
                (AOTInductor) are refused before torch sees the file.
  .keras        a Keras 3 model, loaded with ``safe_mode=True``; Lambda layers and custom
                objects are refused.
Pickles (.pt, .pth, .pkl, .bin, ..., or any file whose bytes are a pickle or a torch zip
archive) and legacy .h5 files are refused without being deserialised; so is any file over
MAX_BYTES, before it is read.  The optional init file (same format, same tensors) holds θ0 and
enables the criteria and weight sets that need it.  Before use, one forward pass on one blank
image of the dataset must give (1, 10) logits.  Every problem is a PruningError with a one-line
message; NaN or infinite weights are kept, with a note in ``model.warnings``.
"""

import os
from pathlib import Path
import re
import zipfile

import numpy as np

from ..data import DATASETS, check_name
from ..errors import PruningError, quote
from ..fileio import sha256
from .readers.common import MAX_BYTES, MAX_UNPACKED, first_line, quiet
from ..models.adapter import ADAPTERS
from ..training.recipes import CIFAR, FASHION, MNIST

FORMATS = {suffix: how for how in ADAPTERS.values() for suffix, _ in how.uploads}  # suffix -> its adapter
LINK_LIKE = re.compile(r"://|(^|[^\w])www\.", re.IGNORECASE)  # what Markdown turns into a link
PICKLED = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".dill"}
PREPROCESSING = {"mnist": MNIST, "fashion_mnist": FASHION, "cifar10": CIFAR}
ADVICE = ("upload a .safetensors state dict (safetensors.torch.save_file(model.state_dict(), path)), "
          "a torch.export program (torch.export.save(program, 'model.pt2')) or a Keras model "
          "(model.save('model.keras'))")


def check_size(nbytes: int, name: str = "the file") -> None:
    if nbytes > MAX_BYTES:
        size, cap = f"{nbytes / 2**20:.0f} MB", f"{MAX_BYTES / 2**20:.0f} MB"
        if size == cap:  # 200 MB + 1 byte: exact counts, not "200 MB; the limit is 200 MB"
            size, cap = f"{nbytes:,} bytes", f"{cap} ({MAX_BYTES:,} bytes)"
        raise PruningError(f"{name} is {size}; the limit is {cap}")
    if nbytes == 0:
        raise PruningError(f"{name} is empty")


def sniff(path: Path) -> str:
    """What the bytes are: pickle, torch-zip (a torch.save archive), zip, safetensors, hdf5 or unknown."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "unknown"
        return "torch-zip" if any(n.endswith(".pkl") for n in names) else "zip"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    return "unknown"


def check_file(path) -> str:
    """The format of an uploaded file ("safetensors", "pt2" or "keras"), or a PruningError."""
    if not isinstance(path, (str, os.PathLike)):
        raise PruningError(f"cannot read {path!r:.60}: not a file path")
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise PruningError(f"model file not found: {path}") from None
    if not path.is_file():
        raise PruningError(f"{path} is not a file")
    check_size(st.st_size, path.name)
    suffix, kind = path.suffix.lower(), sniff(path)
    if kind in ("pickle", "torch-zip") or suffix in PICKLED:
        raise PruningError(f"{path.name} is a pickle file, which can run arbitrary code and is never "
                           f"opened here; {ADVICE}")
    if kind == "hdf5" or suffix in (".h5", ".hdf5"):
        raise PruningError(f"{path.name} is a legacy Keras .h5 file, which is not accepted; {ADVICE}")
    if suffix not in FORMATS:
        raise PruningError(f"unsupported model file type {suffix or path.name!r}; {ADVICE}")
    if kind != ("safetensors" if suffix == ".safetensors" else "zip"):
        raise PruningError(f"{path.name} is not a valid {suffix} file (truncated or corrupt?)")
    if kind == "zip":
        with zipfile.ZipFile(path) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_UNPACKED:
                raise PruningError(f"{path.name} unpacks to more than {MAX_UNPACKED / 2**20:.0f} MB")
    return suffix[1:]


def nonfinite_warnings(states: dict) -> list:
    notes = []
    for which, state in states.items():
        bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            notes.append(f"the {which} weights hold NaN or infinite values (in {', '.join(map(quote, bad[:3]))}"
                         f"{', ...' if len(bad) > 3 else ''}); results may be meaningless")
    return notes


def check_forward(model) -> None:
    """One forward pass on one blank image of the dataset must give (1, 10) logits."""
    image = np.zeros((1, *DATASETS[model.dataset]["shape"]), np.uint8)
    try:
        with quiet():
            out = model.logits(model.weights("final"), "final", model.prepare(image))
    except PruningError:
        raise
    except Exception as exc:  # noqa: BLE001
        first = first_line(exc)  # library messages may name the file's layers
        raise PruningError(f"the model cannot run on a {model.dataset} image of shape {image.shape[1:]}: "
                           f"{type(exc).__name__}: {first}") from None
    if tuple(np.shape(out)) != (1, 10):
        raise PruningError(f"the model's output for one {model.dataset} image has shape {tuple(np.shape(out))}; "
                           f"expected (1, 10): one logit per class")


def load_file_model(path, dataset: str, init_path=None, *, architecture: str | None = None, name: str | None = None):
    """A model (``models.adapter.Model``) from a user's file, read by the reader its adapter names
    for the file's suffix; see the module docstring.

    path, init_path  the trained weights, and optionally the initial ones (same format).
    dataset          mnist, fashion_mnist or cifar10: what the model classifies.
    architecture     for .safetensors: a zoo architecture name (default: recognised).
    name             the model's name in masks and reports (default: the file name).
    """
    check_name(dataset)
    fmt = check_file(path)
    if init_path is not None and check_file(init_path) != fmt:
        raise PruningError(f"the init file must have the model file's format ({Path(path).suffix})")
    name = name or Path(path).name
    suffix = Path(path).suffix.lower()
    how = FORMATS[suffix]
    info = {"name": name, "framework": how.framework, "dataset": dataset,
            "architecture": None, "preprocessing": PREPROCESSING[dataset], "source": "uploaded file",
            "sha256": {f"{w}{suffix}": sha256(p) for w, p in (("final", path), ("init", init_path)) if p}}
    model = how.reader(suffix)(name, info, path, init_path, architecture)
    if not model.specs:
        raise PruningError(f"{name} has no prunable layer (no dense or convolution kernel)")
    linked = next((n for n in model.specs if LINK_LIKE.search(n)), None)
    if linked is not None:  # the page shows tensor names in chart descriptions, where Markdown would link them
        raise PruningError(f"{name}: the tensor name {quote(linked)} looks like a web address; rename the layer")
    check_forward(model)
    model.warnings = nonfinite_warnings(model.states)
    if getattr(model, "static_batch", None):
        model.warnings.append(f"the program only takes batches of {model.static_batch}, so evaluation is slow; "
                              f"export it with a dynamic batch dimension (torch.export.Dim)")
    return model


def forget() -> None:
    """Empty the engine's caches (rankings, prepared inputs, batch-norm statistics), which keep the
    models they were computed for alive: call it when uploaded models are discarded (zoo entries
    are recomputed).  Each cache's owner empties its own."""
    from ..core import batchnorm, evaluate, prune

    for owner in (prune, evaluate, batchnorm):
        owner.forget()


__all__ = ["ADVICE", "FORMATS", "MAX_BYTES", "check_file", "check_size", "forget", "load_file_model"]

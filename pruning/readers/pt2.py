""".pt2: a ``torch.export`` program; only its plain tensors are read (pt2_model.py has the rest)."""

import io
import json
from pathlib import Path
import re
import zipfile

import numpy as np

from ..errors import PruningError
from .common import MAX_UNPACKED, fail, quiet




_PT2_MEMBERS = re.compile(r"(archive_format|archive_version|byteorder|\.data/[\w.-]+|models/model\.json|"
                          r"data/weights/(model_weights_config\.json|weight_\d+)|extra/[\w./-]+|"
                          r"data/constants/(model_constants_config\.json|tensor_\d+)|data/sample_inputs/model\.pt)")


def check_pt2(path) -> None:
    """Refuse a .pt2 whose loading would unpickle anything or load compiled code."""
    import torch

    refuse = "only plain torch.export programs are accepted (no pickled payloads, custom objects or compiled code)"
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            root = names[0].split("/", 1)[0] + "/" if names else ""
            for n in names:
                if not n.startswith(root) or not _PT2_MEMBERS.fullmatch(n[len(root):]):
                    raise PruningError(f"{Path(path).name} contains {n!r}: {refuse}")
            declared = 0
            for config in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
                if root + config in names:
                    entries = json.loads(z.read(root + config))["config"].values()
                    if any(e.get("use_pickle") for e in entries):
                        raise PruningError(f"{Path(path).name} holds pickled tensors: {refuse}")
                    declared += sum(8 * int(np.prod([int(d["as_int"]) for d in e["tensor_meta"]["sizes"]]))
                                    for e in entries)
            if declared > MAX_UNPACKED:  # empty records are allocated at their declared size
                raise PruningError(f"{Path(path).name} declares more than {MAX_UNPACKED / 2**20:.0f} MB of tensors")
            if root + "data/sample_inputs/model.pt" in names:
                torch.load(io.BytesIO(z.read(root + "data/sample_inputs/model.pt")), weights_only=True)
    except PruningError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise fail(path, ".pt2 program", exc) from None
    if root + "models/model.json" not in names:
        raise PruningError(f"{Path(path).name} is not a torch.export program (no models/model.json)")


def read_pt2(path):
    import torch

    check_pt2(path)
    try:
        with quiet():
            return torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise fail(path, ".pt2 program", exc) from None


def pt2_model(name, info, path, init_path):
    from ..pt2_model import Pt2Model

    programs = {"final": read_pt2(path)}
    if init_path is not None:
        programs["init"] = read_pt2(init_path)
    return Pt2Model(name, info, programs)

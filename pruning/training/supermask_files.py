"""The learned supermasks shipped with zoo models: pretrained/<name>/supermasks/.

For each trained density ``keep`` (fraction of every layer kept):
  keep-0.50.npz          the mask, as ``pruning.save_mask`` writes it (reloads with
                         ``pruning.load_mask``); its metadata say method, keep, epochs, seed, data
                         and the measured test accuracy on θ0
  keep-0.50-scores.npz   the learned scores, compressed to LEVELS levels per weight, kept ones
                         above pruned ones: the upper half ranks the kept weights of the layer by
                         |score| (quantiles), the lower half the pruned ones.  The top ``keep`` of
                         each layer is therefore exactly the mask, and other densities are cut
                         from the same order (``criteria.learned_supermask``).  Two 4-bit levels
                         share one byte.
  runs.json              every run measured for the docs (all seeds), with per-epoch history
"""

import json

import numpy as np

from ..core.masks import Mask, load as load_npz, save as save_mask
from ..errors import PruningError
from ..fileio import atomic_write, write_json
from ..models.zoo import ZOO, names

LEVELS = 16  # per weight: 4 bits
HALF = LEVELS // 2


def folder(name: str):
    return ZOO / name / "supermasks"


def mask_path(name: str, keep: float):
    return folder(name) / f"keep-{keep:.2f}.npz"


def scores_path(name: str, keep: float):
    return folder(name) / f"keep-{keep:.2f}-scores.npz"


def trained_keeps(name: str) -> list:
    """The densities shipped for zoo model ``name`` (both files present), ascending."""
    keeps = []
    if name not in names() or not folder(name).is_dir():  # an upload, or none shipped
        return keeps
    for path in folder(name).glob("keep-*-scores.npz"):
        try:
            keep = float(path.name[len("keep-"):-len("-scores.npz")])
        except ValueError:
            continue
        if mask_path(name, keep).is_file():
            keeps.append(keep)
    return sorted(keeps)


def _quantile_levels(values: np.ndarray, levels: int) -> np.ndarray:
    """0..levels-1 by rank of ``values`` (1-d): equal-sized groups, lowest first."""
    order = np.argsort(values, kind="stable")
    out = np.empty(values.size, dtype=np.uint8)
    out[order] = (np.arange(values.size) * levels // max(values.size, 1)).astype(np.uint8)
    return out


def encode(keep_mask: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Levels (uint8, 0..LEVELS-1, shape of the tensor): kept weights HALF.., pruned ..HALF-1."""
    flat_keep, flat = keep_mask.reshape(-1), np.abs(scores.astype(np.float64)).reshape(-1)
    out = np.empty(flat.size, dtype=np.uint8)
    out[~flat_keep] = _quantile_levels(flat[~flat_keep], HALF)
    out[flat_keep] = HALF + _quantile_levels(flat[flat_keep], HALF)
    return out.reshape(keep_mask.shape)


def pack(levels: np.ndarray) -> np.ndarray:
    flat = levels.reshape(-1)
    flat = np.append(flat, np.uint8(0)) if flat.size % 2 else flat
    return (flat[0::2] << 4 | flat[1::2]).astype(np.uint8)


def unpack(packed: np.ndarray, shape: tuple) -> np.ndarray:
    flat = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)
    return flat[: int(np.prod(shape))].reshape(shape)


def save(mask: Mask, scores: dict, runs: list | None = None) -> None:
    """Ship a learned mask (meta: model, keep) and its scores; ``runs`` replaces runs.json."""
    name, keep = mask.meta["model"], mask.meta["keep"]
    folder(name).mkdir(parents=True, exist_ok=True)
    save_mask(mask, mask_path(name, keep))
    arrays = {k: pack(encode(mask[k], scores[k])) for k in mask}
    meta = {"model": name, "keep": keep, "levels": LEVELS, "shapes": {k: list(mask[k].shape) for k in mask},
            "method": mask.meta.get("method"), "seed": mask.meta.get("seed")}
    atomic_write(scores_path(name, keep), lambda f: np.savez_compressed(
        f, **arrays, __meta__=np.array(json.dumps(meta, sort_keys=True))))
    if runs is not None:
        write_json(folder(name) / "runs.json", runs, indent=1)


def load_mask(model, keep: float) -> Mask:
    """The shipped mask of ``model`` at density ``keep``, validated against the model."""
    path = mask_path(model.name, keep)
    if not path.is_file():
        raise PruningError(f"no learned supermask shipped for {model.name!r} at keep {keep:g}")
    return load_npz(path, {n: s.shape for n, s in model.specs.items()})


def load_levels(model, keep: float) -> dict:
    """name -> levels (uint8, native shape) of the shipped scores of ``model`` at ``keep``."""
    stored = load_npz(scores_path(model.name, keep))
    shapes = stored.meta.get("shapes", {})
    if set(stored) != set(model.specs) or any(tuple(shapes.get(n, ())) != s.shape for n, s in model.specs.items()):
        raise PruningError(f"{scores_path(model.name, keep)} does not match model {model.name!r}")
    return {n: unpack(stored[n], model.specs[n].shape) for n in model.specs}


def runs(name: str) -> list:
    path = folder(name) / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else []

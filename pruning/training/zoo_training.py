"""What training a zoo model involves in either framework: the start (recipe, folder, data) and
the end (model.json, written atomically with the hashes of the weight files).

    recipe, out, (x, y), (x_test, y_test), subset = start(name)
    ... train, write out / "init<suffix>", "final<suffix>" ...
    finish(out, info, suffix, log)

``train_torch.train_zoo_model`` and ``train_keras.train_zoo_model`` fill in the middle.
"""

from .. import data
from ..fileio import sha256, write_json
from ..models.zoo import ZOO
from .recipes import RECIPES


def start(name: str) -> tuple:
    """(recipe, output folder (created), train (x, y), test (x, y), indices of the test subset that
    each epoch's quick check uses)."""
    recipe = RECIPES[name]
    out = ZOO / name
    out.mkdir(parents=True, exist_ok=True)
    train, test = data.load(recipe["dataset"], "train"), data.load(recipe["dataset"], "test")
    return recipe, out, train, test, data.stratified_indices(test[1], data.CHECK_SUBSET)


def finish(out, info: dict, suffix: str, log=print) -> dict:
    """``info`` with the sha256 of every ``*<suffix>`` weight file, written to ``out/model.json``."""
    info = {**info, "sha256": {p.name: sha256(p) for p in sorted(out.glob(f"*{suffix}"))}}
    write_json(out / "model.json", info, ensure_ascii=False)
    if log:
        log(f"{info['name']}: test accuracy {info['test_accuracy']:.4f} after {info['training']['wall_time_s']:.0f}s")
    return info

"""The model zoo: ``pretrained/<name>/`` holds model.json and the initial and trained weights."""

import json
import os
from pathlib import Path

from .. import memo
from .adapter import adapter
from ..errors import PruningError

ZOO = Path(__file__).resolve().parents[2] / "pretrained"
MAX_LOADED = int(os.environ.get("PRUNING_MAX_MODELS", "3"))  # models kept loaded; the least recently used go


def names() -> list:
    return sorted(p.parent.name for p in ZOO.glob("*/model.json"))


def check_name(name) -> str:
    """A zoo model's name: only the catalogue's names, so no path can reach another directory."""
    if not isinstance(name, str) or name not in names():
        raise PruningError(f"unknown model {name!r:.60}; choose one of: {', '.join(names())}")
    return name


def info(name: str) -> dict:
    return json.loads((ZOO / check_name(name) / "model.json").read_text())


def catalogue() -> list:
    """One row per zoo model: name, framework, dataset, parameters, recorded test accuracy."""
    rows = []
    for name in names():
        i = info(name)
        rows.append({"name": name, "framework": i["framework"], "dataset": i["dataset"],
                     "architecture": i["architecture"], "parameters": i["parameters"]["total"],
                     "prunable": i["parameters"]["prunable"], "test_accuracy": i["test_accuracy"]})
    return rows


def load_model(name: str):
    """A zoo model, shared read-only (safe to use from many threads); the last MAX_LOADED models used
    stay loaded, so a process that visits the whole zoo keeps its memory bounded."""
    return _load(check_name(name))


@memo.lru(maxsize=MAX_LOADED)
def _load(name: str):
    meta = info(name)
    how = adapter(meta["framework"])
    files = {p.name[: -len(how.suffix)]: p for p in sorted((ZOO / name).glob(f"*{how.suffix}"))}
    return how.load(name, meta, files)

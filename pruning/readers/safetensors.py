""".safetensors: a state dict of a zoo architecture (torch_nets.py), recognised from its keys and shapes."""

from functools import lru_cache

from ..errors import PruningError
from .common import fail


@lru_cache(maxsize=None)
def _zoo_shapes(architecture: str) -> dict:
    from ..torch_nets import ARCHITECTURES

    return {k: tuple(v.shape) for k, v in ARCHITECTURES[architecture]().state_dict().items()}


def _differences(expected: dict, got: dict) -> list:
    optional = [k for k in expected if k.endswith("num_batches_tracked")]
    problems = [f"missing {k}" for k in expected if k not in got and k not in optional]
    problems += [f"unexpected {k}" for k in got if k not in expected]
    problems += [f"{k} has shape {got[k]}, expected {s}" for k, s in expected.items() if k in got and got[k] != s]
    return problems


def read_safetensors(path) -> dict:
    """name -> numpy array; floating tensors as float32."""
    try:
        from safetensors.torch import load_file

        state = load_file(str(path))
        return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}
    except Exception as exc:  # noqa: BLE001 - a user's file: any failure is bad input
        raise fail(path, ".safetensors file", exc) from None


def match_architecture(state: dict, architecture: str | None = None) -> str:
    """The zoo architecture whose state dict has exactly these keys and shapes."""
    from ..torch_nets import ARCHITECTURES

    if architecture is not None and architecture not in ARCHITECTURES:
        raise PruningError(f"unknown architecture {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")
    got = {k: tuple(v.shape) for k, v in state.items()}
    diffs = {a: _differences(_zoo_shapes(a), got) for a in ([architecture] if architecture else ARCHITECTURES)}
    for a, problems in diffs.items():
        if not problems:
            return a
    best = min(diffs, key=lambda a: len(diffs[a]))
    shown = "; ".join(diffs[best][:4]) + ("; ..." if len(diffs[best]) > 4 else "")
    which = f"architecture {best}" if architecture else f"any zoo architecture ({', '.join(ARCHITECTURES)}); closest, {best}"
    raise PruningError(f"the state dict does not match {which}: {shown}")


def safetensors_model(name, info, path, init_path, architecture):
    from ..torch_model import TorchModel

    states = {"final": read_safetensors(path)}
    info["architecture"] = match_architecture(states["final"], architecture)
    if init_path is not None:
        states["init"] = read_safetensors(init_path)
        problems = _differences({k: v.shape for k, v in states["final"].items()},
                                {k: v.shape for k, v in states["init"].items()})
        if problems:
            raise PruningError(f"the init file does not match the model: {'; '.join(problems[:4])}")
    return TorchModel(name, info, states)

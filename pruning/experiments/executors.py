"""Executors: ``map``-compatible functions that run independent trials, here or on Ray.

    run = executor(jobs=None)                  # the built-in map: one trial after another
    run = executor(jobs=2)                     # a Ray instance started here, 2 trials at a time
    run = executor(address="head:6379")        # join an existing Ray cluster
    results = run(fn, items)                   # a list, in the order of items

An executor is what ``pruning.sweep(..., map=...)`` and ``reproduce`` take; nothing else about a
trial changes, so results are the same either way (tests/test_executors.py checks it).  ``fn``
and ``items`` must pickle: pass zoo models by name, not loaded.  Each Ray worker runs one trial at
a time with one PyTorch/BLAS thread (trials are the parallelism), and a local instance's object
store is capped (``OBJECT_STORE_MB``), so that a 2-core CI machine is not oversubscribed.
Ray (https://docs.ray.io) is the engine: a cluster, its scheduling and its fault tolerance are
Ray's, not ours.
"""

import os
from pathlib import Path

from ..errors import PruningError
from ..core.selection import check_whole

OBJECT_STORE_MB = 256
PACKAGE = Path(__file__).resolve().parents[1]  # the ``pruning`` package, shipped to cluster workers
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PRUNING_TORCH_THREADS": "1"}


def executor(jobs=None, address: str | None = None):
    """The built-in ``map`` (no jobs, no address) or a Ray map (see the module docstring)."""
    if jobs is None and address is None:
        return lambda fn, items: list(map(fn, items))
    jobs = None if jobs is None else check_whole(jobs, "--jobs", minimum=1, maximum=1024)
    return RayMap(jobs, address)


def _call(fn, item):
    """Run one trial in a Ray worker with one thread (see THREADS)."""
    threads = os.environ.get("PRUNING_TORCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return fn(item)


class RayMap:
    """``map(fn, items)`` on Ray: started on first use, shut down with ``close`` (or at exit)."""

    def __init__(self, jobs: int | None, address: str | None):
        self.jobs, self.address, self._remote = jobs, address, None

    def _start(self):
        try:
            import ray
        except ImportError:
            raise PruningError("--jobs and --address run trials on Ray: pip install ray") from None
        if not ray.is_initialized():
            if self.address:  # a cluster: its workers get this package, not the zoo's weights
                ray.init(address=self.address, runtime_env={"py_modules": [str(PACKAGE)], "env_vars": THREADS},
                         log_to_driver=False)
            else:
                path = os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])
                env = {**THREADS, "PYTHONPATH": path}
                ray.init(num_cpus=self.jobs, include_dashboard=False, log_to_driver=False,
                         object_store_memory=OBJECT_STORE_MB * 2**20, runtime_env={"env_vars": env})
        self._remote = ray.remote(num_cpus=1)(_call)
        return ray

    def __call__(self, fn, items) -> list:
        ray = self._start()
        refs = [self._remote.remote(fn, item) for item in items]
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:  # a trial's own error: show its last line
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, PruningError):
                raise PruningError(str(cause)) from None
            raise

    def close(self) -> None:
        if self._remote is not None:
            import ray

            ray.shutdown()
            self._remote = None

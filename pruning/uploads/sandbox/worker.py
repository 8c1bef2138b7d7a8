"""The sandboxed worker process: it reads visitors' model files and runs them, never the server.

Started by ``pool.py`` as ``python -m pruning.uploads.sandbox.worker`` with a scrubbed environment, in a
private temporary directory.  Before it reads any request it puts itself under hard limits set
by the OS (``limits.py``: memory, address space, CPU time, open files, file size, no core dumps)
and installs a Python audit hook that refuses unpickling of globals, starting processes, sockets,
and writing or deleting files outside its temporary directory.  The hook is one more layer, not
the sandbox: C code can bypass it; the OS limits and the separate process are what hold.

It serves one request at a time on stdin/stdout (``wire.py``: JSON + raw arrays, no pickle):

    load      {key, files: {"final": path, "init": path}, dataset, name} -> the model's specs,
              weight sets and notes; the model stays here under ``key``
    prepare   {key, input} + x (uint8 images)  -> nothing; the prepared batch stays here
    logits    {key, input, base} + the prunable tensors -> logits (n, classes)
    keras_file {key} + the prunable tensors -> the pruned model as .keras bytes
    forget    {key} -> nothing

A failed request answers ``{"error": one line}``; after running out of memory (or any error that
may have left it in a bad state) it answers ``"fatal": true`` and exits, and the pool starts a
fresh worker for the next request.
"""

from collections import OrderedDict
import os
from pathlib import Path
import resource
import sys
import tempfile

import numpy as np

from ...errors import PruningError
from . import wire
from .limits import Limits, too_many

MiB = 2**20
BLOCKED = frozenset({"pickle.find_class", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn", "socket.connect", "socket.bind",
           "socket.sendto", "socket.sendmsg", "ctypes.call_function", "sys.addaudithook"})
FILE_EVENTS = frozenset({"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate",
               "os.utime", "os.chmod", "os.chown",
               "shutil.rmtree", "shutil.copyfile", "shutil.move"})
DIR_FDS = {"os.mkdir": (2,), "os.remove": (1,), "os.rename": (2, 3), "os.rmdir": (1,), "os.symlink": (2,),
           "os.link": (2, 3), "os.utime": (3,), "os.chmod": (2,),
           "os.chown": (3,)}  # where each event's dir_fd arguments are (-1 or None: not given)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def set_limits(limits: Limits) -> None:
    """Hard OS limits on this process (soft = hard, so that nothing here can raise them)."""
    def cap(which, value):
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_DATA, limits.memory_mb * MiB)
    cap(resource.RLIMIT_AS, limits.address_space_mb * MiB)
    cap(resource.RLIMIT_NOFILE, limits.files)
    cap(resource.RLIMIT_FSIZE, limits.file_mb * MiB)
    cap(resource.RLIMIT_CORE, 0)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.lifetime_cpu_s, limits.lifetime_cpu_s))


def cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def budget_cpu(seconds: float) -> None:
    """Let the next request use at most ``seconds`` more CPU time (SIGXCPU ends the process)."""
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(cpu_used() + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))


def guard(home: Path) -> None:
    """The audit hook: refuse what no model file needs (see the module docstring).  What it checks
    is captured here, so that changing this module's globals later changes nothing.  Files may be
    changed inside ``home`` only; an opened file must be named by an absolute path (the "open"
    event does not show a dir_fd, which a relative path could be resolved against); the other
    events show their dir_fd, which must name a directory inside ``home`` too.  Native libraries
    may be loaded only from Python's own installation."""
    home, blocked, file_events, write_flags, dir_fds = str(home.resolve()), BLOCKED, FILE_EVENTS, WRITE_FLAGS, DIR_FDS
    allowed = (home + os.sep, "/dev/null")
    libraries = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    realpath, fsdecode, isabs, readlink = os.path.realpath, os.fsdecode, os.path.isabs, os.readlink

    def inside(path, absolute: bool = False) -> bool:
        try:
            text = fsdecode(path)
        except (TypeError, ValueError):
            return False
        full = realpath(text)  # a relative path: against the working directory, home
        return (isabs(text) or not absolute) and (full == home or full.startswith(allowed))

    def fd_path(fd: int) -> str:
        """The directory an open descriptor names (shutil.rmtree works through dir_fd)."""
        try:
            return readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return ""

    def hook(event, args):
        if event in blocked:
            raise PermissionError(f"refused in the sandbox: {event}")
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1] or "", args[2] or 0
            writing = any(c in mode for c in "wax+") or flags & write_flags
            if writing and not inside(args[0], absolute=True):  # the event does not show a dir_fd
                raise PermissionError(f"refused in the sandbox: writing {fsdecode(args[0])[:80]!r}")
        elif event in file_events:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
            fds = [args[i] for i in dir_fds.get(event, ()) if i < len(args)]
            fds = [fd for fd in fds if isinstance(fd, int) and fd >= 0]  # -1 or None: no dir_fd
            if not all(inside(a) for a in paths) or not all(inside(fd_path(fd)) for fd in fds):
                raise PermissionError(f"refused in the sandbox: {event} {str(args[0])[:80]!r}")  # outside home
        elif event == "ctypes.dlopen":
            name = args[0]
            if not isinstance(name, str) or not realpath(name).startswith(libraries):
                raise PermissionError(f"refused in the sandbox: loading the native library {str(name)[:80]!r}")

    sys.addaudithook(hook)


def out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "allocate memory" in text or "out of memory" in text or "oom" in text.split()


class Worker:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.models = {}  # key -> loaded model
        self.inputs = OrderedDict()  # (key, input id) -> prepared batch, the 4 most recent

    def handle(self, header: dict, arrays: dict) -> tuple:
        op, key = header.get("op"), str(header.get("key"))
        if op == "load":
            return self.load(key, header)
        if op == "forget":
            self.models.pop(key, None)
            for k in [k for k in self.inputs if k[0] == key]:
                del self.inputs[k]
            return {}, {}
        model = self.models.get(key)
        if model is None:
            return {"missing": "model"}, {}
        if op == "prepare":
            self.inputs[(key, header["input"])] = model.prepare(arrays["x"])
            while len(self.inputs) > 4:
                self.inputs.popitem(last=False)
            return {}, {}
        if op == "logits":
            x = self.inputs.get((key, header.get("input")))
            if x is None:
                return {"missing": "input"}, {}
            out = model.logits(arrays, header["base"], x)
            return {}, {"logits": np.ascontiguousarray(out, np.float32)}
        if op == "keras_file":
            return {}, {"file": self.keras_bytes(model, arrays)}
        if op == "retrain":
            return self.retrain(model, header, arrays)
        raise PruningError(f"unknown request {str(op)[:20]!r}")

    def load(self, key: str, header: dict) -> tuple:
        from ..byo import load_file_model
        from ...core.readouts import parameter_count

        files = header["files"]
        model = load_file_model(files["final"], header["dataset"], files.get("init"), name=header["name"],
                                architecture=header.get("architecture"))
        total, prunable = parameter_count(model)
        budget = int(header.get("max_parameters") or self.limits.upload_parameters)
        if prunable > budget:  # refused here, before its weights are sent to the server
            raise PruningError(too_many(prunable, budget))
        self.models[key] = model
        specs = [[s.name, list(s.shape), list(s.canonical), list(s.unit_params)] for s in model.specs.values()]
        reply = {"framework": model.framework, "info": model.info, "specs": specs, "output_name": model.output_name,
                 "warnings": list(model.warnings), "static_batch": getattr(model, "static_batch", None),
                 "parameters": [total, prunable], "device": f"{model.device}, sandboxed worker"}
        arrays = {f"{which}/{name}": np.asarray(w)
                  for which in model.states for name, w in model.weights(which).items()}
        arrays.update({f"{which}/{p}": np.asarray(model.states[which][p]) for which in model.states
                       for s in model.specs.values() for p in s.unit_params})
        return reply, arrays

    def retrain(self, model, header: dict, mask: dict) -> tuple:
        from ...core.masks import Mask
        from ...training.retrain import retrain

        def progress(record):
            wire.write(self.fd_out, {"progress": {k: float(v) for k, v in record.items()}})

        run = retrain(model, Mask(mask, header.get("meta")), rewind=header["rewind"], epochs=int(header["epochs"]),
                      seed=int(header.get("seed", 0)), limit=header.get("limit"), on_epoch=progress)
        history = [{k: float(v) for k, v in r.items()} for r in run.history]
        return {"history": history}, {k: np.asarray(v) for k, v in run.weights.items()}

    def keras_bytes(self, model, prunable: dict) -> np.ndarray:
        if not hasattr(model, "to_keras"):
            raise PruningError("only a Keras model can be exported as .keras")
        with tempfile.TemporaryDirectory() as tmp:  # Keras writes only to a named .keras file
            path = Path(tmp) / "pruned.keras"
            model.to_keras(prunable, "final").save(str(path))
            return np.frombuffer(path.read_bytes(), np.uint8)

    def serve(self, fd_in: int, fd_out: int) -> None:
        self.fd_out = fd_out
        while True:
            try:
                header, arrays = wire.read(fd_in, max_bytes=2**40)  # the server is trusted
            except wire.WireError:
                return
            budget_cpu(float(header.get("cpu_s", self.limits.cpu_s)))
            fatal = False
            try:
                reply, out = self.handle(header, arrays)
            except PruningError as exc:
                reply, out = {"error": str(exc)}, {}
            except Exception as exc:  # noqa: BLE001 - a visitor's model: any failure is bad input
                fatal = out_of_memory(exc)
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                reply = {"error": f"the model needs more than {self.limits.memory_mb} MB of memory" if fatal
                         else f"the model failed: {type(exc).__name__}: {first}"}
                out = {}
            reply["cpu"] = cpu_used()
            reply["fatal"] = fatal
            try:
                wire.write(fd_out, reply, out)
            except (MemoryError, OSError):
                return
            if fatal:
                return


def main() -> None:
    limits = Limits.from_env()
    home = Path(os.environ["PRUNING_WORKER_HOME"])  # made by the server, which removes it after this process
    os.chdir(home)
    tempfile.tempdir = os.environ["TMPDIR"] = os.environ["HOME"] = str(home)  # libraries write here only
    os.environ["KERAS_HOME"] = str(home / ".keras")
    set_limits(limits)
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the messages
    guard(home)
    Worker(limits).serve(fd_in, fd_out)


if __name__ == "__main__":
    main()

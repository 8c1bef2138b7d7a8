"""Sandboxed worker processes, at most ``max_workers`` at once, each serving one owner.

An owner is a browser session (or one model loaded through the API): its requests all go to its
own worker, so one visitor's file never shares a process with another visitor's models.  When
every worker slot is taken, the least recently used idle worker of another owner is stopped to
make room; when all are busy, a request waits up to ``wait_s`` and is then refused, so one
visitor cannot take the pool.  A worker that breaks a limit, dies, answers garbage or misses its
deadline is killed and forgotten; the owner's next request starts a fresh one.

    with POOL.worker(owner) as w:
        header, arrays = w.request({"op": ...}, arrays, timeout=60)
"""

from contextlib import contextmanager
import atexit
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from ...errors import PruningError
from . import wire
from .limits import Limits

ROOT = Path(__file__).resolve().parents[3]  # the directory holding the ``pruning`` package
PASSED = ("PATH", "LANG", "LC_ALL", "PRUNING_DATA_DIR")  # the only variables a worker inherits
PROGRESS_HEADER = 4096  # bytes of one progress message (a few numbers)


class WorkerFailed(PruningError):
    """The worker broke a limit or died; it has been replaced."""


def environment(limits: Limits) -> dict:
    """A worker's environment: no secrets of the server's, only what it needs."""
    env = {k: os.environ[k] for k in PASSED if k in os.environ}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1",
                "PRUNING_WORKER_MEMORY_MB": str(limits.memory_mb), "PRUNING_WORKER_CPU_S": str(limits.cpu_s),
                "PRUNING_WORKER_LIFETIME_CPU_S": str(limits.lifetime_cpu_s),
                "PRUNING_WORKER_FILES": str(limits.files), "PRUNING_WORKER_FILE_MB": str(limits.file_mb)})
    return env


class Worker:
    """One worker process and the pipes to it."""

    def __init__(self, limits: Limits, owner: str):
        self.limits, self.owner = limits, owner
        self.loaded, self.inputs = set(), set()  # what this process holds: model keys, (key, input id)
        self.cpu, self.busy, self.last_used = 0.0, False, time.monotonic()
        self.home = tempfile.mkdtemp(prefix="pruning-worker-")  # the worker's only writable place
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pruning.uploads.sandbox.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if os.environ.get("PRUNING_WORKER_DEBUG") else subprocess.DEVNULL,
            env={**environment(limits), "PRUNING_WORKER_HOME": self.home}, cwd="/", close_fds=True,
            start_new_session=True)
        os.set_blocking(self.process.stdin.fileno(), False)  # writes time out (wire.write)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _death(self, what: str, started: float, timeout: float) -> WorkerFailed:
        """Stop the process, and say in one line why it failed."""
        self.stop()
        code = self.process.returncode
        if time.monotonic() - started >= timeout:
            why = f"{what} took longer than {timeout:.0f} s"
        elif code == -signal.SIGXCPU or code == -signal.SIGKILL and self.cpu_near_limit():
            why = f"{what} used more than {self.limits.cpu_s} s of CPU time"
        elif code is not None and code < 0:
            why = f"{what} stopped the worker process ({signal.Signals(-code).name})"
        else:
            why = f"{what} stopped the worker process (exit code {code})"
        return WorkerFailed(f"{why}; the model's worker was replaced, other visitors were not affected")

    def cpu_near_limit(self) -> bool:
        return self.cpu >= self.limits.lifetime_cpu_s * 0.9

    def request(self, header: dict, arrays: dict | None = None, *, timeout: float, what: str = "the request",
                cpu_s: float | None = None, max_bytes: int = 2**20, on_progress=None, max_progress: int = 0) -> tuple:
        """Send one request and wait for its answer; WorkerFailed (the worker is gone) or
        PruningError (the worker's one-line refusal).  The answer's arrays may hold ``max_bytes``
        in all.  Up to ``max_progress`` small messages with "progress" may come before the answer;
        they go to ``on_progress``; if it raises, the worker is stopped mid-request (it is replaced)."""
        started = time.monotonic()
        try:
            wire.write(self.process.stdin.fileno(), {**header, "cpu_s": cpu_s or self.limits.cpu_s}, arrays,
                       deadline=started + timeout)
            progress = 0
            while True:
                reply, out = wire.read(self.process.stdout.fileno(), deadline=started + timeout, max_bytes=max_bytes,
                                       max_header=wire.MAX_HEADER if progress >= max_progress else PROGRESS_HEADER)
                if "progress" not in reply:
                    break
                progress += 1
                if progress > max_progress or out:
                    self.stop()
                    raise WorkerFailed(f"{what}: the worker sent more progress than asked for; it was replaced")
                if on_progress is not None:
                    try:
                        on_progress(reply["progress"])
                    except BaseException:
                        self.stop()
                        raise
        except (wire.WireError, OSError, ValueError):
            raise self._death(what, started, timeout) from None
        self.cpu = float(reply.get("cpu") or 0.0) if isinstance(reply.get("cpu"), (int, float)) else self.cpu
        if reply.get("fatal"):
            self.stop()
        if "error" in reply:
            raise (WorkerFailed if reply.get("fatal") else PruningError)(_line(reply["error"]))
        return reply, out

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)  # the worker was killed: it never cleans up itself


MARKUP = str.maketrans({"[": "(", "]": ")", "<": "‹", ">": "›"})  # no Markdown links, images or HTML
AUTOLINKS = re.compile(r"(?i)://|www\.")  # what Markdown makes a link of by itself: defanged below


def _defang(match) -> str:
    """'://' and 'www.' with look-alike characters (a fullwidth colon, a one-dot leader)."""
    return match.group(0).replace(":", "\uff1a").replace(".", "\u2024")


def _line(text) -> str:
    """A worker's message as one printable line that cannot carry a Markdown link, image or HTML tag
    into the page (it may come from a subverted worker).  Code spans (``errors.quote`` puts file
    content in them) are kept as they are: Markdown shows their content as plain text.  Runs of
    backquotes become one, and an unpaired last one goes, so no span can be left open."""
    text = "".join(c if c.isprintable() else " " for c in str(text)).strip()
    parts = re.sub("`+", "`", text).split("`")
    if len(parts) % 2 == 0:  # an odd number of backquotes: the last one pairs with nothing
        parts[-2:] = [parts[-2] + parts[-1]]
    text = "`".join(p if i % 2 else AUTOLINKS.sub(_defang, p.translate(MARKUP)) for i, p in enumerate(parts))
    return text[:300] or "the worker failed"


class Pool:
    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits.from_env()
        self._workers = {}  # owner -> Worker
        self._changed = threading.Condition()
        self._trainers = threading.BoundedSemaphore(max(1, self.limits.max_workers - 1))

    def _take(self, owner: str) -> Worker:
        deadline = time.monotonic() + self.limits.wait_s
        with self._changed:
            while True:
                w = self._workers.get(owner)
                if w is not None and not w.alive:
                    w.stop()
                    del self._workers[owner]
                    w = None
                if w is not None and not w.busy:
                    break
                if w is None:
                    if len(self._workers) < self.limits.max_workers:
                        w = self._workers[owner] = Worker(self.limits, owner)
                        break
                    idle = [x for x in self._workers.values() if not x.busy]
                    if idle:  # make room: stop the least recently used idle worker of another owner
                        oldest = min(idle, key=lambda x: x.last_used)
                        oldest.stop()
                        del self._workers[oldest.owner]
                        continue
                left = deadline - time.monotonic()
                if left <= 0 and w is not None:
                    raise PruningError("this session's uploaded model is still busy with an earlier request; "
                                       "try again when it has finished")
                if left <= 0:
                    raise PruningError("the server is busy with other visitors' uploaded models; "
                                       "try again in a minute (the zoo models work meanwhile)")
                self._changed.wait(left)
            w.busy = True
            return w

    def _give_back(self, w: Worker) -> None:
        with self._changed:
            w.busy, w.last_used = False, time.monotonic()
            if not w.alive or w.cpu_near_limit():
                w.stop()
                if self._workers.get(w.owner) is w:
                    del self._workers[w.owner]
            self._changed.notify_all()

    @contextmanager
    def training(self):
        """A slot for one long training request: at most max_workers - 1 at once (at least 1), so
        that training never holds every worker; refused at once, not queued."""
        if not self._trainers.acquire(blocking=False):
            raise PruningError("other visitors are retraining their uploaded models right now; try again in a "
                               "few minutes (evaluating works meanwhile)")
        try:
            yield
        finally:
            self._trainers.release()

    @contextmanager
    def worker(self, owner: str):
        """This owner's worker, for the duration of the block (other threads of the owner wait)."""
        w = self._take(owner)
        try:
            yield w
        finally:
            self._give_back(w)

    def forget(self, owner: str, key: str) -> None:
        """Let this owner's worker drop model ``key`` (if it holds it and is idle): a session that
        replaces its uploads does not fill its worker's memory."""
        with self._changed:
            w = self._workers.get(owner)
            if w is None or w.busy or not w.alive or key not in w.loaded:
                return
            w.busy = True
        try:
            w.request({"op": "forget", "key": key}, timeout=self.limits.timeout_s, what="forgetting a model")
            w.loaded.discard(key)
            w.inputs = {k for k in w.inputs if k[0] != key}
        except PruningError:
            pass  # a worker that fails here is stopped and replaced anyway
        finally:
            self._give_back(w)

    def release(self, owner: str) -> None:
        """Stop this owner's worker (its session ended or dropped its uploads)."""
        with self._changed:
            w = self._workers.get(owner)
            if w is not None and not w.busy:
                w.stop()
                del self._workers[owner]
                self._changed.notify_all()

    def shutdown(self) -> None:
        with self._changed:
            for w in self._workers.values():
                w.stop()
            self._workers.clear()

    def count(self) -> int:
        return len(self._workers)


_POOL = None
_POOL_LOCK = threading.Lock()


def pool() -> Pool:
    """The process-wide pool (limits read from the environment when first used)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Pool()
            atexit.register(_POOL.shutdown)
        return _POOL

"""The sandboxed worker (pruning/uploads/sandbox): uploads are read and run in a limited process, and a
worker that breaks a limit is replaced without disturbing anyone else."""

from dataclasses import replace
import io
import os
from pathlib import Path
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

import pruning
from pruning.uploads.sandbox import Limits, Pool, WorkerFailed, load_upload, wire
from pruning.uploads.sandbox.pool import Worker

ROOT = Path(pruning.__file__).resolve().parent.parent
ZOO = ROOT / "pretrained" / "mnist-lenet300-torch"


class Upload(io.BytesIO):
    """What Streamlit's file_uploader returns: a BytesIO with a name and a size."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name, self.size = name, len(data)


def lenet(pool, owner="a", init=True):
    final = Upload((ZOO / "final.safetensors").read_bytes(), "mine.safetensors")
    first = Upload((ZOO / "init.safetensors").read_bytes(), "mine-init.safetensors") if init else None
    return load_upload(final, "mnist", first, owner=owner, pool=pool)


@pytest.fixture
def pool():
    p = Pool(Limits())
    yield p
    p.shutdown()


def test_an_upload_evaluates_as_the_zoo_model_does_but_in_another_process(pool):
    model = lenet(pool)
    zoo = pruning.load_model("mnist-lenet300-torch")
    for weights in ("final", "init", "signed-constant"):
        for granularity in ("weight", "unit"):
            mask = pruning.compute_mask(zoo, "large_final", 0.9, scope="global", granularity=granularity)
            assert pruning.evaluate(model, mask, weights).accuracy == pruning.evaluate(zoo, mask, weights).accuracy
    worker = pool._workers["a"].process
    assert worker.pid != os.getpid() and worker.poll() is None
    assert model.device.endswith("sandboxed worker")


def test_a_worker_gets_no_secrets_and_runs_under_os_limits(pool, monkeypatch):
    monkeypatch.setenv("SERVER_SECRET_TOKEN", "hunter2")
    lenet(pool)
    pid = pool._workers["a"].process.pid
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"hunter2" not in environ and b"SERVER_SECRET_TOKEN" not in environ
    limits = Path(f"/proc/{pid}/limits").read_text()
    row = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert row["Max data size"][:2] == [str(2048 * 2**20)] * 2  # soft = hard: the worker cannot raise it
    assert row["Max open files"][:2] == ["256", "256"]
    assert row["Max core file size"][:2] == ["0", "0"]
    assert row["Max cpu time"][1] == "3600"


def test_a_killed_worker_is_replaced_and_the_model_still_answers(pool):
    model = lenet(pool)
    mask = pruning.compute_mask(model, "movement", 0.8)
    before = pruning.evaluate(model, mask).accuracy
    old = pool._workers["a"].process
    old.kill()
    old.wait()
    assert pruning.evaluate(model, mask).accuracy == before  # a fresh worker read the file again
    assert pool._workers["a"].process.pid != old.pid


def test_a_request_over_its_deadline_kills_the_worker_with_one_line(pool):
    model = lenet(pool)
    worker = pool._workers["a"]
    worker.limits = replace(worker.limits, timeout_s=0.001)
    with pytest.raises(WorkerFailed, match=r"^evaluation took longer than 0 s; .*replaced") as caught:
        pruning.evaluate(model, None, limit=1000)
    assert "\n" not in str(caught.value)
    assert worker.process.poll() is not None
    assert pruning.evaluate(model, None, limit=100).n == 100  # the next request gets a fresh worker


def _spinner(tmp_path) -> Path:
    """A legitimate-looking program that computes for long: 100 square layers (~120 MFLOP per image)."""
    import torch
    from torch import nn

    class Spin(nn.Module):
        def __init__(self):
            super().__init__()
            self.square = nn.Linear(784, 784)
            self.fc = nn.Linear(784, 10)

        def forward(self, x):  # (n, 784)
            for _ in range(100):
                x = torch.tanh(self.square(x))
            return self.fc(x)

    path = tmp_path / "spin.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(Spin().eval(), (torch.zeros(2, 784),), dynamic_shapes=({0: batch},)), path)
    return path


def test_cpu_time_is_a_hard_limit(pool, tmp_path):
    model = load_upload(Upload(_spinner(tmp_path).read_bytes(), "spin.pt2"), "mnist", owner="a", pool=pool)
    worker = pool._workers["a"]
    worker.limits = replace(worker.limits, cpu_s=1, timeout_s=300)  # the OS stops it, not the clock
    started = time.monotonic()
    with pytest.raises(WorkerFailed, match="used more than 1 s of CPU time"):
        pruning.evaluate(model, None)
    assert time.monotonic() - started < 30
    assert worker.process.returncode is not None


def _memory_hog(tmp_path) -> Path:
    """A legitimate-looking program whose intermediate tensor is 200 MB at a batch of 1,000."""
    import torch
    from torch import nn

    class Hog(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):  # (n, 784)
            wide = x.repeat(1, 64)  # (n, 50176)
            return self.fc(wide.view(-1, 64, 784).mean(1))

    path = tmp_path / "hog.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(Hog().eval(), (torch.zeros(2, 784),), dynamic_shapes=({0: batch},)), path)
    return path


def test_a_model_that_needs_too_much_memory_gets_one_line_and_others_keep_working(tmp_path):
    small = Pool(Limits(memory_mb=400))
    try:
        model = load_upload(Upload(_memory_hog(tmp_path).read_bytes(), "hog.pt2"), "mnist", owner="hog", pool=small)
        other = lenet(small, owner="b")
        with pytest.raises(WorkerFailed, match="needs more than 400 MB of memory"):
            pruning.evaluate(model, None)
        assert pruning.evaluate(other, None, limit=500).n == 500  # another visitor's worker is untouched
        assert pruning.evaluate(model, None, limit=100).n == 100  # small batches fit: a fresh worker serves them
    finally:
        small.shutdown()


def test_an_upload_over_the_parameter_budget_is_refused_before_the_server_holds_its_weights(pool, monkeypatch):
    """LeNet-300-100 has 266,200 prunable weights. Under a budget of 100,000 the worker refuses it
    (one line, naming the setting). A worker that does not refuse (compromised) meets the server's
    own bounds: the answer may hold only the budget's bytes (at 1,000 weights LeNet's 1 MB is cut
    off and the worker stopped), and whatever arrives is counted again."""
    assert Limits.from_env({"PRUNING_UPLOAD_PARAMETERS": "100000"}).upload_parameters == 100_000
    assert lenet(pool, init=False).specs  # the default budget takes it
    real = Worker.request

    def lenient(self, header, *args, **kwargs):
        return real(self, {**header, "max_parameters": 10**9} if header.get("op") == "load" else header,
                    *args, **kwargs)

    small, tiny = Pool(Limits(upload_parameters=100_000)), Pool(Limits(upload_parameters=1_000))
    try:
        with pytest.raises(pruning.PruningError, match=r"266,200 prunable weights; this server accepts uploads of "
                                                       r"at most 100,000 \(PRUNING_UPLOAD_PARAMETERS\)$"):
            lenet(small, init=False)
        monkeypatch.setattr(Worker, "request", lenient)
        with pytest.raises(WorkerFailed, match="loading the model stopped the worker"):
            lenet(tiny, owner="b", init=False)  # 1 MB of weights against a 48 KB answer
        with pytest.raises(pruning.PruningError, match="266,200 prunable weights"):
            lenet(small, owner="c", init=False)  # arrives (under 4.8 MB), counted, refused
    finally:
        small.shutdown()
        tiny.shutdown()


def test_one_worker_per_owner_and_a_cap_on_workers_in_all():
    capped = Pool(Limits(max_workers=2, wait_s=0.5))
    try:
        a, b = lenet(capped, "a", init=False), lenet(capped, "b", init=False)
        pids = {o: capped._workers[o].process.pid for o in "ab"}
        assert pids["a"] != pids["b"]
        with capped.worker("a"), capped.worker("b"):  # both busy: a third visitor waits, then gets one line
            with pytest.raises(pruning.PruningError, match="busy"):
                lenet(capped, "c", init=False)
        lenet(capped, "c", init=False)  # both idle: the least recently used one ("b", given back first) makes room
        assert capped.count() == 2 and set(capped._workers) == {"a", "c"}
        assert pruning.evaluate(b, None, limit=100).n == 100  # "b" gets a new worker (evicting "a")
        assert set(capped._workers) == {"b", "c"} and capped._workers["b"].process.pid != pids["b"]
        assert pruning.evaluate(a, None, limit=100).n == 100
    finally:
        capped.shutdown()


def test_retraining_an_upload_runs_in_its_worker(pool, monkeypatch):
    from pruning.training.retrain import retrain

    if not (os.environ.get("PRUNING_DATA_DIR") and Path(os.environ["PRUNING_DATA_DIR"], "mnist.npz").exists()):
        pytest.skip("needs the MNIST training split (PRUNING_DATA_DIR)")
    model = lenet(pool)
    mask = pruning.compute_mask(model, "large_final", 0.8)
    records = []
    monkeypatch.setattr(pruning.data, "load", lambda *a, **k: pytest.fail("the server read training data"))
    run = retrain(model, mask, rewind="init", epochs=1, limit=600, on_epoch=records.append)
    assert len(records) == 1 and 0.1 < run.accuracy <= 1 and run.history == records
    for name, w in run.weights.items():
        assert not w[~mask[name]].any()  # pruned weights stayed zero


def test_the_audit_hook_refuses_unpickling_processes_and_writes_outside_home(tmp_path):
    """Also through a directory descriptor (os.open / os.unlink with dir_fd) and through native code
    reached with ctypes (libc's system)."""
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    code = f"""
import os, pickle, sys, tempfile
from pathlib import Path
from pruning.uploads.sandbox.worker import guard
home = Path(tempfile.mkdtemp())
guard(home)
refused = 0
for attempt in (lambda: pickle.loads({pickle.dumps(Payload())!r}), lambda: os.system("true"),
                lambda: open({str(marker)!r}, "w"), lambda: os.remove({str(tmp_path / "keep")!r}),
                lambda: __import__("subprocess").run(["true"]),
                lambda: __import__("socket").create_connection(("127.0.0.1", 9)),
                lambda: os.open("marker", os.O_CREAT | os.O_WRONLY, dir_fd=os.open({str(tmp_path)!r}, os.O_RDONLY)),
                lambda: os.unlink("keep", dir_fd=os.open({str(tmp_path)!r}, os.O_RDONLY)),
                lambda: __import__("ctypes").CDLL(None).system(b"touch {marker}"),
                lambda: __import__("ctypes").CDLL("libc.so.6")):
    try:
        attempt()
    except PermissionError:
        refused += 1
(home / "ok").write_text("allowed")
print(refused)
"""
    (tmp_path / "keep").write_text("x")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "10", out.stderr
    assert not marker.exists() and (tmp_path / "keep").exists()


def _read_bytes(data: bytes, **kw):
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    try:
        return wire.read(r, deadline=time.monotonic() + 5, **kw)
    finally:
        os.close(r)


def test_the_wire_round_trips_plain_arrays_and_refuses_anything_else():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]), "c": np.zeros(0, "u1")}
    header, back = _read_bytes(b"".join(bytes(p) for p in wire.encode({"op": "x"}, arrays)))
    assert header["op"] == "x"
    assert all(np.array_equal(back[k], v) and back[k].dtype == v.dtype for k, v in arrays.items())
    with pytest.raises(TypeError):
        wire.encode({}, {"o": np.array([object()])})
    good = b"".join(bytes(p) for p in wire.encode({}, {"a": np.zeros(4, np.float32)}))
    bad = [b"", b"\xff" * 8, (10**9).to_bytes(8, "little") + b"{}", (2).to_bytes(8, "little") + b"[]",
           good[:-1],  # truncated
           good.replace(b"<f4", b"|O8"),  # object dtype
           good.replace(b"[4]", b"[-4]"),  # negative shape
           good.replace(b"[4]", b"[9999999999]")]  # far more bytes than sent or allowed
    for data in bad:
        with pytest.raises(wire.WireError):
            _read_bytes(data, max_bytes=2**20)


def test_a_silent_peer_is_a_timeout_not_a_hang():
    r, w = os.pipe()
    try:
        started = time.monotonic()
        with pytest.raises(wire.Timeout):
            wire.read(r, deadline=started + 0.2)
        assert time.monotonic() - started < 2
    finally:
        os.close(r)
        os.close(w)


def test_limits_are_settings():
    limits = Limits.from_env({"PRUNING_WORKER_MEMORY_MB": "1024", "PRUNING_MAX_WORKERS": "4",
                              "PRUNING_WORKER_TIMEOUT_S": "30"})
    assert (limits.memory_mb, limits.max_workers, limits.timeout_s, limits.cpu_s) == (1024, 4, 30.0, 60)
    for bad in ("-1", "nan", "inf", "lots"):
        with pytest.raises(pruning.PruningError, match="PRUNING_WORKER_MEMORY_MB"):
            Limits.from_env({"PRUNING_WORKER_MEMORY_MB": bad})


def test_a_workers_message_cannot_carry_markup_but_keeps_quoted_names():
    from pruning.uploads.sandbox.pool import _line

    assert _line("unexpected `![x](http://e/t.png)`; done") == "unexpected `![x](http://e/t.png)`; done"
    assert _line("![x](http://e/t.png) <img src=x>") == "!(x)(http\uff1a//e/t.png) ‹img src=x›"
    defanged = "see https\uff1a//evil.example or www\u2024evil.example"
    assert _line("see https://evil.example or www.evil.example") == defanged
    assert _line("a ``b`` ` ![i](u)") == "a `b`  !(i)(u)"  # runs become one; the unpaired last one goes
    assert _line("`open ![i](u) [l](v)") == "open !(i)(u) (l)(v)"  # no span is left open
    assert _line("line\nbreak\x1b[31m") == "line break (31m"
    assert len(_line("x" * 5000)) == 300


def test_a_stopped_workers_directory_is_removed(pool):
    lenet(pool, init=False)
    worker = pool._workers["a"]
    home = Path(worker.home)
    assert home.is_dir() and Path(f"/proc/{worker.process.pid}/cwd").resolve() == home.resolve()
    pool.shutdown()
    assert not home.exists()


def test_training_never_holds_every_worker():
    capped = Pool(Limits(max_workers=2))
    with capped.training():
        with pytest.raises(pruning.PruningError, match="retraining"):
            with capped.training():
                pass
    with capped.training():  # released
        pass


def test_closing_an_upload_frees_it_in_its_worker(pool):
    first, second = lenet(pool, init=False), lenet(pool)
    worker = pool._workers["a"]
    assert {first.key, second.key} <= worker.loaded
    first.close()
    assert first.key not in worker.loaded and second.key in worker.loaded and worker.alive
    assert not Path(first.files["final"]).exists()
    assert pruning.evaluate(second, None, limit=100).n == 100


def test_an_uploaded_keras_models_export_is_written_by_its_worker(pool):
    keras_file = ROOT / "pretrained" / "mnist-lenet300-keras" / "final.keras"
    model = load_upload(Upload(keras_file.read_bytes(), "mine.keras"), "mnist", owner="k", pool=pool)
    mask = pruning.compute_mask(model, "large_final", 0.9)
    data = model.keras_bytes(pruning.masked_weights(model, mask))
    assert data[:2] == b"PK" and len(data) > 100_000
    assert not list(Path(pool._workers["k"].home).rglob("pruned.keras"))  # its temporary folder went too

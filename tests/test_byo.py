"""Bring your own model (pruning/uploads/byo.py): formats, refusals, shape checks, NaN weights, uploads."""

import importlib
import io
from pathlib import Path
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
import torch
from torch import nn

import pruning
from pruning.uploads import byo
from pruning.models.torch_nets import LeNet5

ZOO = pruning.models.zoo.ZOO / "mnist-lenet300-torch"


class Tiny(nn.Module):
    """conv 2@3x3 -> linear 10, normalising nothing: inputs in [0, 1], (n, 1, 28, 28)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 26 * 26, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class NoKernel(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(10))

    def forward(self, x):
        return x.flatten(1)[:, :10] * self.scale


def export(module, path, batch=None):
    module = module.eval()
    dynamic = None if batch else ({0: torch.export.Dim("batch")},)
    ep = torch.export.export(module, (torch.rand(batch or 2, 1, 28, 28),), dynamic_shapes=dynamic)
    torch.export.save(ep, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("byo")
    torch.manual_seed(0)
    tiny = Tiny()
    out = {"tiny": tiny, "pt2": export(tiny, d / "tiny.pt2"), "pt2_b1": export(tiny, d / "tiny-b1.pt2", batch=1)}
    torch.manual_seed(1)
    out["pt2_init"] = export(Tiny(), d / "tiny-init.pt2")
    out["pt2_wrong"] = export(Tiny(classes=5), d / "five.pt2")
    out["pt2_nokernel"] = export(NoKernel(), d / "nokernel.pt2")
    return out


class Evil:
    """A pickle that, once unpickled, creates the directory ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def refused(path, message, dataset="mnist", **kw):
    with pytest.raises(pruning.PruningError, match=message) as err:
        byo.load_file_model(path, dataset, **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


# --- .safetensors ------------------------------------------------------------------------------

def test_safetensors_of_a_zoo_architecture_equals_the_zoo_model():
    zoo = pruning.load_model("mnist-lenet300-torch")
    mine = byo.load_file_model(ZOO / "final.safetensors", "mnist", ZOO / "init.safetensors")
    assert mine.info["architecture"] == "lenet300" and mine.warnings == [] and mine.name == "final.safetensors"
    assert set(mine.states) == {"final", "init"} and list(mine.specs) == list(zoo.specs)
    for strategy, weights in (("large_final", "final"), ("movement", "init"),
                              ("large_final_same_sign", "signed-constant")):
        a = pruning.compute_mask(zoo, strategy, 0.8, scope="global")
        b = pruning.compute_mask(mine, strategy, 0.8, scope="global")
        assert all(np.array_equal(a[n], b[n]) for n in a)
        assert (pruning.evaluate(mine, b, weights, limit=500).accuracy
                == pruning.evaluate(zoo, a, weights, limit=500).accuracy)


def test_architecture_recognised_from_keys_and_shapes(tmp_path):
    state = {k: v.numpy() for k, v in LeNet5().state_dict().items()}
    save_file(state, tmp_path / "l5.safetensors")
    model = byo.load_file_model(tmp_path / "l5.safetensors", "fashion_mnist")
    assert model.info["architecture"] == "lenet5" and "init" not in model.states
    assert model.info["preprocessing"] == pruning.training.recipes.FASHION
    refused(tmp_path / "l5.safetensors", "does not match architecture lenet300: unexpected `conv1",
            architecture="lenet300")
    refused(tmp_path / "l5.safetensors", "unknown architecture 'vgg'", architecture="vgg")


def test_mismatched_state_dicts_name_every_problem(tmp_path):
    state = load_file(ZOO / "final.safetensors")
    del state["fc3.bias"]
    state["fc2.weight"] = np.zeros((100, 299), np.float32)
    state["extra"] = np.zeros(3, np.float32)
    save_file(state, tmp_path / "bad.safetensors")
    text = refused(tmp_path / "bad.safetensors", "closest, lenet300")
    for part in ("missing fc3.bias", "unexpected `extra`", "fc2.weight has shape (100, 299), expected (100, 300)"):
        assert part in text
    save_file({"fc1.weight": np.zeros((3, 3), np.float32)}, tmp_path / "init.safetensors")
    refused(ZOO / "final.safetensors", "the init file does not match the model: missing fc1.bias",
            init_path=tmp_path / "init.safetensors")


def test_float16_weights_are_read_as_float32(tmp_path):
    state = {k: v.astype(np.float16) for k, v in load_file(ZOO / "final.safetensors").items()}
    save_file(state, tmp_path / "half.safetensors")
    model = byo.load_file_model(tmp_path / "half.safetensors", "mnist")
    assert model.states["final"]["fc1.weight"].dtype == np.float32
    assert pruning.evaluate(model, limit=500).accuracy > 0.95


def test_wrong_dataset_is_a_shape_error():
    refused(ZOO / "final.safetensors", r"cannot run on a cifar10 image of shape \(32, 32, 3\)", dataset="cifar10")
    refused(ZOO / "final.safetensors", "unknown dataset 'svhn'", dataset="svhn")


def test_nan_and_infinite_weights_are_evaluated_with_a_warning(tmp_path):
    state = load_file(ZOO / "final.safetensors")
    state["fc1.weight"][0, :5] = np.nan
    state["fc1.weight"][1, :2] = np.inf
    save_file(state, tmp_path / "nan.safetensors")
    model = byo.load_file_model(tmp_path / "nan.safetensors", "mnist")
    assert len(model.warnings) == 1 and "fc1.weight" in model.warnings[0]
    dense = pruning.evaluate(model, limit=300)  # the NaNs reach the logits: evaluated, never a crash
    assert dense.n == 300 and any("outputs hold NaN" in w for w in dense.warnings)
    # small_final keeps the small weights: the NaN and inf ones are pruned, and pruned means exactly 0
    mask = pruning.compute_mask(model, "small_final", 0.05)
    assert not mask["fc1.weight"][0, :5].any()
    w = pruning.masked_weights(model, mask)
    assert np.isfinite(w["fc1.weight"]).all() and np.isfinite(w["fc2.weight"]).all()
    result = pruning.evaluate(model, mask, limit=300)
    assert result.warnings == model.warnings  # the outputs are finite now


# --- .pt2 --------------------------------------------------------------------------------------

def test_pt2_program_evaluates_like_its_module(files):
    model = byo.load_file_model(files["pt2"], "mnist", files["pt2_init"])
    assert list(model.specs) == ["conv.weight", "fc.weight"] and model.output_name == "fc.weight"
    assert model.specs["conv.weight"].shape == (2, 1, 3, 3) and set(model.states) == {"final", "init"}
    mask = pruning.compute_mask(model, "movement", 0.7, scope="global")
    result = pruning.evaluate(model, mask, limit=200)
    module = Tiny().eval()
    module.load_state_dict(files["tiny"].state_dict())
    with torch.no_grad():
        for name, keep in mask.items():
            module.get_parameter(name).mul_(torch.from_numpy(keep))
        x, _ = pruning.data.load("mnist", "test")
        pred = module(torch.from_numpy(x[result.indices].astype(np.float32) / 255).unsqueeze(1)).argmax(1).numpy()
    assert np.array_equal(result.predictions, pred)
    init = pruning.evaluate(model, mask, "init", limit=200)
    assert init.n == 200


def test_pt2_static_batch_is_padded(files):
    dynamic = byo.load_file_model(files["pt2"], "mnist")
    static = byo.load_file_model(files["pt2_b1"], "mnist")
    assert static.static_batch == 1 and "only takes batches of 1" in static.warnings[0]
    mask = pruning.compute_mask(static, "large_final", 0.5)
    assert pruning.evaluate(static, mask, limit=30).predictions.tolist() == \
        pruning.evaluate(dynamic, mask, limit=30).predictions.tolist()


def test_pt2_without_init_refuses_theta0_criteria(files):
    model = byo.load_file_model(files["pt2"], "mnist")
    with pytest.raises(pruning.PruningError, match="needs the initial weights"):
        pruning.compute_mask(model, "movement", 0.5)
    with pytest.raises(pruning.PruningError, match="has no initial weights"):
        pruning.evaluate(model, None, "signed-constant")


def test_pt2_wrong_output_and_no_kernel(files):
    refused(files["pt2_wrong"], r"output for one mnist image has shape \(1, 5\); expected \(1, 10\)")
    refused(files["pt2_nokernel"], "no prunable layer")
    refused(files["pt2"], r"input is \(1, 28, 28\) per example; for images of shape \(32, 32, 3\)", dataset="cifar10")


def _rewrite_zip(src, dst, change):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for info in z.infolist():
            data = change(info.filename, z.read(info.filename))
            if data is not None:
                out.writestr(info.filename, data)
        extra = change(None, None)
        if extra:
            out.writestr(*extra)
    return dst


def test_pt2_with_pickled_payloads_or_compiled_code_is_refused(files, tmp_path, monkeypatch):
    def pickled(name, data):
        if name and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config)
        return data

    root = zipfile.ZipFile(files["pt2"]).namelist()[0].split("/")[0]
    so = lambda name, data: data if name else (f"{root}/data/aotinductor/model/model.so", b"\x7fELF")  # noqa: E731
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: pytest.fail("torch.export.load was called"))
    refused(_rewrite_zip(files["pt2"], tmp_path / "p.pt2", pickled), "holds pickled tensors")
    refused(_rewrite_zip(files["pt2"], tmp_path / "a.pt2", so), "contains .*aotinductor.*only plain torch.export")


def test_pt2_with_a_pickled_sample_input_is_refused(files, tmp_path):
    def swap(name, data):
        if name and name.endswith("sample_inputs/model.pt"):
            buffer = io.BytesIO()
            torch.save({"x": Evil(tmp_path / "pwned")}, buffer)
            return buffer.getvalue()
        return data

    refused(_rewrite_zip(files["pt2"], tmp_path / "s.pt2", swap), "not a valid .pt2 program")
    assert not (tmp_path / "pwned").exists()


# --- refused files -----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".bin", ".safetensors", ".pt2", ".keras"])
def test_pickles_are_refused_without_being_read(tmp_path, suffix, monkeypatch):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"weights": Evil(tmp_path / "pwned")}))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    assert "upload a .safetensors state dict" in refused(path, "is a pickle file")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("suffix", [".pt", ".pt2", ".keras", ".safetensors"])
def test_torch_zip_archives_are_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save({"fc.weight": torch.ones(2, 2), "x": Evil(tmp_path / "pwned")}, path)  # a zip holding data.pkl
    refused(path, "is a pickle file")
    assert not (tmp_path / "pwned").exists()


def test_other_files_are_refused(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    refused(tmp_path / "m.h5", "legacy Keras .h5")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07" + bytes(100))
    refused(tmp_path / "m.onnx", "unsupported model file type '.onnx'")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    refused(tmp_path / "empty.safetensors", "is empty")
    refused(tmp_path / "missing.safetensors", "not found")
    refused(tmp_path, "is not a file")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage!!!!!!!!}" + bytes(64))
    refused(tmp_path / "junk.safetensors", "not a valid .safetensors file")


def test_files_over_the_limit_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(byo, "MAX_BYTES", 1000)
    monkeypatch.setattr(byo, "sniff", lambda path: pytest.fail("the file was read"))
    (tmp_path / "big.safetensors").write_bytes(bytes(1001))
    refused(tmp_path / "big.safetensors", "limit is 0 MB")


@pytest.mark.parametrize("name", ["tiny.pt2", "final.safetensors"])
def test_truncated_files_are_a_clear_error(files, tmp_path, name):
    src = files["pt2"] if name.endswith(".pt2") else ZOO / name
    data = src.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 40):
        (tmp_path / name).write_bytes(data[:cut])
        refused(tmp_path / name, "not a valid")


def test_zip_bombs_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(byo, "MAX_UNPACKED", 10_000)
    with zipfile.ZipFile(tmp_path / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", b" " * 100_000)
    refused(tmp_path / "bomb.keras", "unpacks to more than")


# --- uploads -----------------------------------------------------------------------------------

class Upload(io.BytesIO):
    """What Streamlit's file_uploader returns: a BytesIO with a name and a size."""

    def __init__(self, path, name=None):
        super().__init__(path.read_bytes())
        self.name, self.size = name or path.name, len(self.getvalue())


def test_load_upload(files, monkeypatch, tmp_path):
    """Web uploads are read and run in a sandboxed worker (tests/test_sandbox.py has the rest)."""
    model = pruning.load_upload(Upload(files["pt2"], "../../etc/my\nmodel.pt2"), "mnist", Upload(files["pt2_init"]))
    assert model.name == "my_model.pt2" and set(model.states) == {"final", "init"}
    directory = Path(model.files["final"]).parent.parent
    assert pruning.evaluate(model, pruning.compute_mask(model, "movement", 0.5), limit=50).n == 50
    byo.forget()
    evaluate_module = importlib.import_module("pruning.core.evaluate")  # pruning.evaluate is the function
    assert pruning.core.prune.ranking.cache_len() == 0 and evaluate_module.inputs.cache_len() == 0
    model.close()
    assert not directory.exists()
    with pytest.raises(pruning.PruningError, match="is a pickle file"):
        pruning.load_upload(Upload(files["pt2"], "x.pth"), "mnist")
    monkeypatch.setattr(byo, "MAX_BYTES", 100)
    big = Upload(files["pt2"])
    big.getvalue = lambda: pytest.fail("read before the size check")
    with pytest.raises(pruning.PruningError, match="the limit is"):
        pruning.load_upload(big, "mnist")


# --- .keras ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    keras = pytest.importorskip("keras")
    from keras import layers

    d = tmp_path_factory.mktemp("keras")

    def build(seed, middle=None, classes=10):
        keras.utils.set_random_seed(seed)
        x = inputs = keras.Input((28, 28))
        x = layers.Flatten(name="flatten")(layers.Rescaling(1 / 255, name="scale")(x))
        if middle is not None:
            x = middle(x)
        return keras.Model(inputs, layers.Dense(classes, name="fc")(layers.Dense(16, "relu", name="hidden")(x)))

    @keras.saving.register_keras_serializable(package="mine")
    class Double(layers.Layer):
        def call(self, x):
            return 2 * x

    paths = {"final": d / "final.keras", "init": d / "init.keras", "lambda": d / "lambda.keras",
             "custom": d / "custom.keras", "five": d / "five.keras", "nokernel": d / "nokernel.keras"}
    build(0).save(paths["final"])
    build(1).save(paths["init"])
    build(0, layers.Lambda(lambda t: t * 2)).save(paths["lambda"])
    build(0, Double()).save(paths["custom"])
    build(0, classes=5).save(paths["five"])
    inputs = keras.Input((10,))
    keras.Model(inputs, layers.Rescaling(2.0)(inputs)).save(paths["nokernel"])
    return paths


def test_keras_file_model(keras_files):
    model = byo.load_file_model(keras_files["final"], "mnist", keras_files["init"])
    assert model.framework == "keras" and list(model.specs) == ["hidden/kernel", "fc/kernel"]
    assert set(model.states) == {"final", "init"} and model.warnings == []
    mask = pruning.compute_mask(model, "movement", 0.5, scope="global")
    assert pruning.evaluate(model, mask, "signed-constant", limit=100).n == 100


def test_keras_lambda_custom_and_wrong_shapes_are_refused(keras_files):
    refused(keras_files["lambda"], "has a Lambda layer")
    refused(keras_files["custom"], "uses `Double` from .*custom objects are refused")
    refused(keras_files["five"], r"output for one mnist image has shape \(1, 5\)")
    refused(keras_files["nokernel"], "no prunable layer")
    refused(keras_files["final"], "do not fit the model's input", dataset="cifar10")
    refused(keras_files["final"], "the init file must have the model file's format", init_path=ZOO / "init.safetensors")


def test_truncated_keras_file(keras_files, tmp_path):
    data = keras_files["final"].read_bytes()
    (tmp_path / "t.keras").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "t.keras", "not a valid .keras file")
    _rewrite_zip(keras_files["final"], tmp_path / "c.keras", lambda n, d: b"{not json" if n == "config.json" else d)
    refused(tmp_path / "c.keras", "not a valid .keras file")


def test_keras_config_naming_a_non_keras_function_is_refused(keras_files, tmp_path):
    def evil(name, data):
        if name != "config.json":
            return data
        text = data.decode().replace('"activation": "relu"', '"activation": {"module": "keras.src.utils.file_utils", '
                                     '"class_name": "function", "config": "get_file", "registered_name": null}')
        assert text != data.decode()
        return text

    refused(_rewrite_zip(keras_files["final"], tmp_path / "f.keras", evil), "calls `get_file` from `keras.src.utils")


def test_pt2_declaring_huge_tensors_is_refused(files, tmp_path):
    def huge(name, data):
        if name and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            next(iter(config["config"].values()))["tensor_meta"]["sizes"] = [{"as_int": 100_000}] * 3
            return json.dumps(config)
        return data

    refused(_rewrite_zip(files["pt2"], tmp_path / "h.pt2", huge), "declares more than")


@pytest.mark.parametrize("op", [torch.ops.aten.from_file.default, torch.ops.aten.save.default, print])
def test_pt2_graphs_calling_io_or_non_aten_operators_are_refused(op):
    from types import SimpleNamespace

    from pruning.models.pt2_model import check_graph

    graph = torch.fx.Graph()
    graph.output(graph.call_function(op, (graph.placeholder("x"),)))
    with pytest.raises(pruning.PruningError, match="only plain aten tensor operators"):
        check_graph(SimpleNamespace(graph=graph))


def test_resnet20_state_dict_for_cifar10(tmp_path):
    from pruning.models.torch_nets import ResNet20

    state = {k: v.numpy() for k, v in ResNet20().state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, tmp_path / "r20.safetensors")  # without the optional batch counters
    model = byo.load_file_model(tmp_path / "r20.safetensors", "cifar10")
    assert model.info["architecture"] == "resnet20" and model.output_name == "fc.weight"
    assert model.info["preprocessing"] == pruning.training.recipes.CIFAR and len(model.specs) == 20
    refused(tmp_path / "r20.safetensors", r"cannot run on a mnist image of shape \(28, 28\)")


class InPlace(nn.Module):
    """Normalises its input and bumps a buffer in place: legal in eval mode, but must not leak."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls.add_(1)
        return self.fc(x.sub_(0.5).flatten(1)) + self.calls


def test_pt2_in_place_operators_change_nothing_shared(tmp_path):
    torch.manual_seed(0)
    model = byo.load_file_model(export(InPlace(), tmp_path / "inplace.pt2"), "mnist")
    x = model.prepare(np.full((3, 28, 28), 255, np.uint8))
    first = model.logits(model.weights(), "final", x)
    assert np.array_equal(first, model.logits(model.weights(), "final", x))
    assert torch.equal(x, torch.ones_like(x)) and model.states["final"]["calls"].tolist() == [0.0]


def test_pt2_in_training_mode_or_random_is_refused(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    program = torch.export.export(net.train(), (torch.rand(2, 1, 28, 28),))
    torch.export.save(program, str(tmp_path / "train.pt2"))
    refused(tmp_path / "train.pt2", "in training mode or with random numbers; export it after model.eval()")
    drop = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)).train()
    torch.export.save(torch.export.export(drop, (torch.rand(2, 1, 28, 28),)), str(tmp_path / "drop.pt2"))
    refused(tmp_path / "drop.pt2", "in training mode or with random numbers")


def test_real_process_keras_error_is_one_line(keras_files):
    """TensorFlow's start-up logs (written by C++ to file descriptor 2) do not reach stderr."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pruning", "evaluate", "--model-file", str(keras_files["five"]),
                           "--dataset", "mnist", "--sparsity", "0.5"], capture_output=True, text=True, timeout=300,
                          cwd=ZOO.parent.parent,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: the model's output for one mnist image has shape (1, 5); "
                           "expected (1, 10): one logit per class\n")

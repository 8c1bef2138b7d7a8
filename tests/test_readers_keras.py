"""Hostile .keras files (pruning/uploads/readers/keras.py, keras_config.py): every refusal is one line and
comes before Keras builds anything.  Most files are written by hand (no TensorFlow); the tests
that load a model import Keras through a module fixture."""

import glob
import io
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import pruning
from pruning.uploads import byo
from pruning.errors import PruningError
from pruning.uploads.readers import keras as reader
from pruning.uploads.readers import keras_config


def layer(cls, name, build=None, **config):
    """A layer as Keras 3 writes it in config.json (``build``: its build_config input shape)."""
    out = {"module": "keras.layers", "class_name": cls, "config": {"name": name, **config}, "name": name}
    if build is not None:
        out["build_config"] = {"input_shape": build}
    return out


def functional(*layers):
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": "m", "layers": list(layers)}}


INPUT = layer("InputLayer", "pixels", batch_shape=[None, 28, 28])
FLAT = layer("Flatten", "flat", [None, 28, 28])


def keras_file(path, config, members=()):
    """A .keras zip holding this config (a dict, or raw bytes) and other members."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", config if isinstance(config, bytes) else json.dumps(config))
        for name, data in members:
            z.writestr(name, data)
    return path


def refused(path, message):
    """read_keras refuses with a one-line message (nothing built, TensorFlow not needed)."""
    with pytest.raises(PruningError, match=message) as err:
        reader.read_keras(path)
    assert "\n" not in str(err.value)
    return str(err.value)


# --- config.json: size, depth, objects ---------------------------------------------------------

def test_config_too_large(tmp_path):
    config = functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10))
    config["padding"] = os.urandom(2**20).hex()  # 2 MB that do not compress like a zip bomb
    refused(keras_file(tmp_path / "big.keras", config), r"config.json is 2.0 MB; the limit is 1 MB")


def test_config_one_byte_over_the_limit_says_so_exactly(tmp_path):
    config = functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10))
    config["padding"] = ""
    size = len(json.dumps(config))
    missing = keras_config.MAX_CONFIG_BYTES + 1 - size
    config["padding"] = os.urandom(missing // 2).hex() + "x" * (missing % 2)  # does not compress like a bomb
    refused(keras_file(tmp_path / "big.keras", config),
            r"config.json is 1,048,577 bytes; the limit is 1 MB \(1,048,576 bytes\)$")


@pytest.mark.parametrize("levels", [100, 200_000])
def test_config_too_deep(tmp_path, levels):
    config = json.dumps(functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10)))
    deep = config[:-1] + ', "x": ' + "[" * levels + "]" * levels + "}"
    refused(keras_file(tmp_path / "deep.keras", deep.encode()), "config.json nests deeper than 64 levels")


def test_an_unterminated_string_config_is_refused_in_one_pass():
    """1 MB of escaped quotes that never close: the depth count before parsing must not re-scan from
    every quote (a quadratic scan took minutes; a linear one well under the alarm)."""
    import signal

    from pruning.uploads.readers.keras_config import parse_config

    data = ('"' + '\\"' * 349_000).encode()  # 1 MB: a string opened and never closed
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the depth count did not finish in 20 s"))
    signal.alarm(20)
    try:
        with pytest.raises(pruning.PruningError, match="not a valid .keras file"):
            parse_config(data, "slow.keras")
    finally:
        signal.alarm(0)


def test_config_not_json_or_not_an_object(tmp_path):
    refused(keras_file(tmp_path / "j.keras", b"{not json"), r"not a valid \.keras file \(config\.json: ")
    refused(keras_file(tmp_path / "l.keras", b"[1, 2]"), "config.json is not a JSON object")


def test_lambda_and_custom_objects_are_still_refused(tmp_path):
    lam = layer("Lambda", "f", [None, 784], function={"class_name": "__lambda__", "config": {"code": "x"}})
    refused(keras_file(tmp_path / "l.keras", functional(INPUT, lam)),
            "has a Lambda layer \\(`f`\\): Lambda functions are arbitrary Python code, which is refused")
    custom = dict(layer("Double", "d\n[x](http://evil)", [None, 784]), module="evil.layers")
    refused(keras_file(tmp_path / "c.keras", functional(INPUT, custom)),
            "uses `Double` from `evil.layers`: custom objects are refused")
    fn = layer("Dense", "fc", [None, 784], units=10,
               activation={"module": "os", "class_name": "function", "config": "system"})
    refused(keras_file(tmp_path / "f.keras", functional(INPUT, FLAT, fn)), "uses `function` from `os`")
    fn["config"]["activation"]["module"] = "keras.src.utils.file_utils"
    refused(keras_file(tmp_path / "g.keras", functional(INPUT, FLAT, fn)),
            "calls `system` from `keras.src.utils.file_utils`: only Keras activations")


CODE = {"class_name": "__lambda__", "config": {"value": ["4wAAAAA=", None, None]}}  # as serialization_lib writes it


@pytest.mark.parametrize("where, shown", [
    ({"activation": CODE}, "as `activation` of `fc`"),
    ({"kernel_initializer": {"module": "keras.initializers", "class_name": "VarianceScaling",
                             "config": {"seed": CODE}}}, "as `seed` of `fc`"),
    ({"kernel_regularizer": [CODE]}, "as `kernel_regularizer` of `fc`"),
    ({"activation": {"class_name": "__lambda__", "config": {"code": "x", "defaults": None, "closure": None}}},
     "as `activation` of `fc`"),
    ({"activation": {"function_type": "lambda", "function": ["x", None, None]}}, "as `activation` of `fc`"),
])
def test_python_code_anywhere_in_the_config_is_refused(tmp_path, where, shown):
    """A ``__lambda__`` object is marshalled bytecode wherever it is (not only in a Lambda layer);
    Keras's safe_mode would stop it too, but without saying where."""
    dense = layer("Dense", "fc", [None, 784], units=10, **where)
    text = refused(keras_file(tmp_path / "l.keras", functional(INPUT, FLAT, dense)),
                   f"l.keras has a Python lambda {shown}: Lambda functions are arbitrary Python code, which is "
                   f"refused; use built-in Keras layers, activations and initializers$")
    assert text.count("`") == 4


def test_python_code_in_compile_config_is_refused(tmp_path):
    config = functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10))
    config["compile_config"] = {"loss": CODE}
    refused(keras_file(tmp_path / "c.keras", config), "has a Python lambda as `loss` of `m`: Lambda functions")


# --- the parameter budget ----------------------------------------------------------------------

def test_a_dense_layer_with_a_billion_units(tmp_path):
    dense = layer("Dense", "fc", [None, 784], units=10**9)
    refused(keras_file(tmp_path / "d.keras", functional(INPUT, FLAT, dense)),
            "the model declares 785,000,000,000 parameters; the limit is 50,000,000")


def test_many_layers_add_up_over_the_budget(tmp_path):
    layers = [layer("Dense", f"fc{i}", [None, 2000], units=2000) for i in range(13)]  # 13 x 4M
    refused(keras_file(tmp_path / "m.keras", functional(INPUT, FLAT, *layers)), "declares 52,026,000 parameters")


def test_nested_models_are_counted(tmp_path):
    inner = {"module": "keras", "class_name": "Sequential",
             "config": {"name": "block", "layers": [layer("Conv2D", "c", [None, 28, 28, 1000], filters=1000,
                                                          kernel_size=[7, 7])]}}
    assert "config.json" in reader.read_keras(keras_file(tmp_path / "n.keras", functional(INPUT, functional(inner))))
    inner["config"]["layers"].append(layer("Dense", "fc", [None, 1000], units=1000))
    refused(keras_file(tmp_path / "n2.keras", functional(INPUT, functional(inner))), "declares 50,002,000 parameters")


@pytest.mark.parametrize("cls", ["LSTM", "MultiHeadAttention", "EinsumDense", "TimeDistributed", None, "Totally\nNew"])
def test_layer_classes_that_cannot_be_bounded_are_named(tmp_path, cls):
    odd = layer(cls, "odd", [None, 784], units=10)
    text = refused(keras_file(tmp_path / "u.keras", functional(INPUT, FLAT, odd)),
                   "uses layers whose size cannot be bounded here")
    assert f"(`{str(cls).replace(chr(10), '?')}`)" in text


def test_a_weighted_layer_without_its_input_shape(tmp_path):
    refused(keras_file(tmp_path / "b.keras", functional(INPUT, FLAT, layer("Dense", "fc", units=10))),
            r"layer `fc` \(Dense\) has no input shape \(build_config\); save the model after it is built")
    bad = layer("Conv2D", "conv", [None, 28, 28, None], filters=4, kernel_size=3)
    refused(keras_file(tmp_path / "c.keras", functional(INPUT, bad)), r"layer `conv` \(Conv2D\) cannot be sized")
    bad = layer("Conv2D", "conv", [None, 28, 28, 1], filters=-4, kernel_size=3)
    refused(keras_file(tmp_path / "f.keras", functional(INPUT, bad)), "its filters is `-4`, not a positive integer")


@pytest.mark.parametrize("shape", [[None, -5, 28], [None, 28.5], [None, "28"], [None, True], "28"])
def test_negative_or_odd_dimensions(tmp_path, shape):
    inputs = layer("InputLayer", "pixels", batch_shape=shape)
    refused(keras_file(tmp_path / "n.keras", functional(inputs, FLAT)),
            "layer `pixels` declares the shape .*; dimensions must be non-negative integers")


def test_a_huge_input_shape(tmp_path):
    inputs = layer("InputLayer", "pixels", batch_shape=[None, 100_000, 100_000])
    refused(keras_file(tmp_path / "h.keras", functional(inputs, FLAT)),
            r"layer `pixels` declares 10,000,000,000 values per example \(shape `\[None, 100000, 100000\]`\)")
    refused(keras_file(tmp_path / "r.keras", functional(INPUT, layer("Reshape", "r", target_shape=[-1, 10**8]))),
            "layer `r` declares 100,000,000 values per example")


# --- the archive -------------------------------------------------------------------------------

@pytest.mark.parametrize("member", ["evil.py", "model.weights.npz", "../config.json", "assets/../../x"])
def test_unexpected_archive_members(tmp_path, member):
    config = functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10))
    refused(keras_file(tmp_path / "x.keras", config, [(member, b"import os")]), "x.keras contains")


def test_no_config(tmp_path):
    with zipfile.ZipFile(tmp_path / "e.keras", "w") as z:
        z.writestr("metadata.json", "{}")
    refused(tmp_path / "e.keras", r"not a valid \.keras file \(no config\.json\)")


def h5_bytes(build) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        build(f)
    return buffer.getvalue()


def test_weights_from_other_files_are_refused(tmp_path):
    config = functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 4)
    cases = {
        "external": lambda f: f.create_dataset("layers/fc/vars/0", (256,), "u1", external=[(str(secret), 0, 256)]),
        "softlink": lambda f: f.__setitem__("layers/x", h5py.SoftLink("/etc/passwd")),
        "extlink": lambda f: f.__setitem__("layers/x", h5py.ExternalLink(str(tmp_path / "other.h5"), "/")),
    }
    for name, build in cases.items():
        path = keras_file(tmp_path / f"{name}.keras", config, [("model.weights.h5", h5_bytes(build))])
        refused(path, "is refused: its weights file (takes `layers/fc/vars/0` from other files|links to `layers/x`)")


def test_weights_declaring_huge_arrays_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_UNPACKED", 10_000)
    config = functional(INPUT, FLAT, layer("Dense", "fc", [None, 784], units=10))

    def bomb(f):
        f.create_dataset("layers/fc/vars/0", (100_000,), "f8", chunks=(1000,), compression="gzip", fillvalue=0)

    path = keras_file(tmp_path / "w.keras", config, [("model.weights.h5", h5_bytes(bomb))])
    refused(path, "its weights file declares more than 0 MB of arrays")
    refused(keras_file(tmp_path / "j.keras", config, [("model.weights.h5", b"not hdf5")]),
            r"not a valid \.keras file \(model\.weights\.h5: ")


# --- the zoo, and real Keras files -------------------------------------------------------------

def test_every_zoo_keras_config_passes_the_budget_with_its_exact_count():
    paths = sorted(glob.glob(str(pruning.models.zoo.ZOO / "*keras*" / "*.keras")))
    assert len(paths) >= 4
    for path in paths:
        members = reader.read_keras(path)
        with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as f:
            stored = []
            f.visititems(lambda n, o, stored=stored: stored.append(o.size) if isinstance(o, h5py.Dataset) else None)
        count = keras_config.count_parameters(json.loads(members["config.json"]), path)
        assert count == sum(stored) <= keras_config.MAX_PARAMS


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def test_parameter_bound_equals_keras_count(keras, tmp_path):
    """Every sized layer class, nested in a Sequential inside a functional model."""
    from keras import layers

    keras.utils.set_random_seed(0)
    block = keras.Sequential([layers.Conv2D(6, 3, groups=2, padding="same"), layers.BatchNormalization(),
                              layers.DepthwiseConv2D(3, depth_multiplier=2), layers.SeparableConv2D(5, (3, 1)),
                              layers.Conv2DTranspose(3, 2, strides=2), layers.LayerNormalization(axis=[-2, -1]),
                              layers.GroupNormalization(groups=3), layers.PReLU()], name="block")
    inputs = keras.Input((12, 12, 4))
    x = layers.Conv1D(4, 3)(layers.Reshape((80, 12))(block(inputs)))
    x = layers.Normalization(axis=-1)(layers.Conv3D(2, 2)(layers.Reshape((3, 26, 4, 1))(x)))
    outputs = layers.Dense(10, lora_rank=2)(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    saved = tmp_path / "all.keras"
    model.save(saved)
    config = json.loads(zipfile.ZipFile(saved).read("config.json"))
    assert keras_config.count_parameters(config, "all.keras") == model.count_params()
    emb = keras.Sequential([keras.Input((5,), dtype="int32"), layers.Embedding(1000, 8), layers.Flatten(),
                            layers.Dense(10)])
    emb.save(tmp_path / "emb.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "emb.keras").read("config.json"))
    assert keras_config.count_parameters(config, "emb.keras") == emb.count_params()


def test_keras_reads_a_rebuilt_archive_not_the_visitors_file(keras, tmp_path, monkeypatch):
    from keras import layers

    from pruning.models import keras_model

    inputs = keras.Input((28, 28))
    keras.Model(inputs, layers.Dense(10, name="fc")(layers.Flatten()(inputs))).save(tmp_path / "mine.keras")
    with zipfile.ZipFile(tmp_path / "mine.keras", "a") as z:  # an extra member Keras would ignore
        z.writestr("assets/notes.txt", "hello")
    seen, load = [], keras_model.load
    monkeypatch.setattr(keras_model, "load", lambda path: seen.append(str(path)) or load(path))
    model = byo.load_file_model(tmp_path / "mine.keras", "mnist")
    assert seen and all("mine.keras" not in p and p.endswith("final.keras") for p in seen)
    assert list(model.specs) == ["fc/kernel"] and model.info["sha256"]["final.keras"]
    assert zipfile.ZipFile(seen[0]).namelist() == ["metadata.json", "config.json", "model.weights.h5",
                                                   "assets/notes.txt"]
    assert np.asarray(model.to_keras().get_layer("fc").kernel).shape == (784, 10)


def test_layer_outputs_over_the_limit_are_refused_after_loading(keras, tmp_path, monkeypatch):
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    x = layers.Dense(10, name="fc")(layers.Flatten()(inputs))
    keras.Model(inputs, layers.ZeroPadding1D(500, name="pad")(layers.Reshape((10, 1))(x))).save(tmp_path / "p.keras")
    monkeypatch.setattr(reader, "MAX_ACTIVATIONS", 1000)
    with pytest.raises(PruningError, match="p.keras: layer `pad` gives 1,010 values per example; the limit is 1,000"):
        byo.load_file_model(tmp_path / "p.keras", "mnist")


def test_keras_errors_name_the_visitors_file(keras, tmp_path):
    from keras import layers

    inputs = keras.Input((28, 28))
    keras.Model(inputs, layers.Dense(5, name="fc")(layers.Flatten()(inputs))).save(tmp_path / "five.keras")
    with zipfile.ZipFile(tmp_path / "five.keras") as z, zipfile.ZipFile(tmp_path / "odd.keras", "w") as out:
        for name in z.namelist():
            data = z.read(name)
            out.writestr(name, data.replace(b'"units": 5', b'"units": 6') if name == "config.json" else data)
    with pytest.raises(PruningError, match="odd.keras") as err:
        byo.load_file_model(tmp_path / "odd.keras", "mnist")
    assert "\n" not in str(err.value) and "pruning-keras-" not in str(err.value)


def test_a_tensor_name_that_looks_like_a_web_address_is_refused(tmp_path):
    """The page shows tensor names in chart descriptions (Markdown), where ``www.…`` or ``…://…``
    would become a link: such a layer name is refused in one line, before anything is shown."""
    import keras

    inputs = keras.Input((28, 28))
    x = keras.layers.Flatten(name="flat")(inputs)
    outputs = keras.layers.Dense(10, name="www.evil.example")(x)
    path = tmp_path / "linked.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(PruningError, match=r"the tensor name `www\.evil\.example.*` looks like a web address") as err:
        byo.load_file_model(path, "mnist")
    assert "\n" not in str(err.value)

"""ONNX exports (pruning.models.onnx_export), masked and shrunk, for every zoo model: onnxruntime
gives the engine's predictions (argmax identical, logits within 1e-4) on real test images (the
shipped MNIST / Fashion-MNIST splits; CIFAR-10 needs PRUNING_DATA_DIR, else the check runs on
random images and only then); the CLI writes them; bad requests are one-line errors."""

import io

import numpy as np
import pytest

import pruning
from pruning import data
from pruning.cli import main
from pruning.models import export, onnx_export, onnx_measure, zoo

ZOO = zoo.names()


def real_images(dataset: str, n: int = 400):
    """Real test images, or None when the dataset is not available here."""
    try:
        x, _ = data.load(dataset)
    except data.DatasetUnavailable:
        return None
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


def engine(model, mask, x) -> np.ndarray:
    return model.logits(pruning.masked_weights(model, mask), "final", model.prepare(x))


def unit_mask(model):
    return pruning.compute_mask(model, "large_final", 0.5, scope="layer", granularity="unit")


@pytest.mark.parametrize("shrunk", [False, True], ids=["pruned", "shrunk"])
@pytest.mark.parametrize("name", ZOO)
def test_onnxruntime_agrees_with_the_engine(name, shrunk, tmp_path):
    model = zoo.load_model(name)
    mask = unit_mask(model)
    x = real_images(model.dataset)
    real = x is not None
    if not real:  # no CIFAR data here: shapes and agreement on random images (the real check skips below)
        x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "model.onnx"
    export.FORMATS.get("shrunk-onnx" if shrunk else "onnx")(model, mask, path)
    sess = onnx_export.session(path.read_bytes(), threads=1)
    out = onnx_export.run(sess, onnx_export.inputs(model, x), 128)
    ref = engine(model, mask, x)
    assert out.shape == ref.shape == (len(x), 10)
    assert (out.argmax(1) == ref.argmax(1)).all()
    assert np.abs(out - ref).max() <= 1e-4
    if not real:
        pytest.skip(f"{model.dataset} test images need PRUNING_DATA_DIR (checked on random images only)")


def test_dense_shapes_stay_in_the_masked_onnx_and_go_in_the_shrunk_one():
    model = zoo.load_model("mnist-lenet300-torch")
    x = real_images(model.dataset, 2000)
    mask = unit_mask(model)
    refs = {"dense": model.logits({}, "final", model.prepare(x)), "pruned": engine(model, mask, x)}
    stages = []
    rows = {r["variant"]: r for r in onnx_measure.measure(model, mask, x, refs, repeats=1,
                                                           progress=lambda *a: stages.append(a))}
    assert stages == [(1, 4, "exported and checked the dense model"), (2, 4, "exported and checked the pruned model"),
                      (3, 4, "exported and checked the shrunk model"), (4, 4, "timing round 1 of 1")]
    assert rows["dense"]["parameters"] == rows["pruned"]["parameters"] == 266610  # 784*300+300+300*100+100+100*10+10
    assert abs(rows["pruned"]["onnx_bytes"] - rows["dense"]["onnx_bytes"]) < 0.01 * rows["dense"]["onnx_bytes"]
    assert rows["pruned"]["nonzero"] < rows["dense"]["nonzero"]
    assert rows["shrunk"]["parameters"] == rows["shrunk"]["nonzero"] < rows["pruned"]["parameters"] / 2
    assert rows["shrunk"]["onnx_bytes"] < rows["dense"]["onnx_bytes"] / 2
    assert rows["dense"]["weight_bytes"] == rows["pruned"]["weight_bytes"] == 4 * 266610  # float32, dense shapes
    assert rows["shrunk"]["weight_bytes"] == 4 * rows["shrunk"]["parameters"]
    assert all(r["same_argmax"] and r["max_abs_diff"] <= 1e-4 and r["seconds"] > 0 for r in rows.values())


def test_measure_reports_what_cannot_be_shrunk():
    model = zoo.load_model("mnist-lenet300-keras")
    x = real_images(model.dataset, 200)
    mask = pruning.compute_mask(model, "large_final", 0.5)
    refs = {"dense": model.logits({}, "final", model.prepare(x)), "pruned": engine(model, mask, x)}
    rows = onnx_measure.measure(model, mask, x, refs, repeats=1)
    assert [r["variant"] for r in rows] == ["dense", "pruned", "shrunk"]
    assert "nothing to shrink" in rows[2]["error"] and rows[1]["same_argmax"]


def test_cli_format_onnx(tmp_path, capsys):
    path = tmp_path / "lenet5.onnx"
    out = io.StringIO()
    assert main(["export", "--model", "mnist-lenet5-torch", "--sparsity", "0.8", "--format", "onnx",
                 "--out", str(path)], out=out) == 0
    assert "wrote" in out.getvalue()
    model = zoo.load_model("mnist-lenet5-torch")
    x = real_images(model.dataset, 200)
    got = onnx_export.run(onnx_export.session(path.read_bytes()), onnx_export.inputs(model, x), 100)
    ref = engine(model, pruning.compute_mask(model, "large_final", 0.8), x)
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert main(["export", "--model", "mnist-lenet5-torch", "--sparsity", "0.8", "--format", "onnx",
                 "--out", str(tmp_path / "x.onnnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: an ONNX file must end in .onnx") and err.count("\n") == 1


def test_uploads_never_get_onnx_or_shrunk_exports():
    """An uploaded model lives in its sandboxed worker: the server builds no ONNX or shrunk file
    from it, and says so in one line."""
    from pathlib import Path

    class Upload:
        def __init__(self, path):
            self.name, self.data = Path(path).name, Path(path).read_bytes()
            self.size = len(self.data)

        def getvalue(self):
            return self.data

    zoo_dir = zoo.ZOO / "mnist-lenet300-torch"
    remote = pruning.load_upload(Upload(zoo_dir / "final.safetensors"), "mnist")
    try:
        assert export.offered(remote) == ("npz", "torch")
        mask = pruning.compute_mask(remote, "large_final", 0.5, granularity="unit", scope="layer")
        for fmt in ("onnx", "shrunk-onnx", "shrunk-safetensors"):
            with pytest.raises(pruning.PruningError, match="zoo's architectures only"):
                export.FORMATS.get(fmt)(remote, mask, "never-written.onnx")
    finally:
        remote.close()
    assert not Path("never-written.onnx").exists()

"""ONNX and int8 export (the deploy extra) and the deployment figures against the ONNX graph."""
import json

import numpy as np
import pytest

from archsearch.model import build_model, figures
from archsearch.presets import PRESETS
from conftest import copy_study
from test_cli import cli

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

KERNELS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul"}


def onnx_peak_ram(path) -> int:
    """The largest input + output activation (elements per image) of one Conv, pool or Gemm node of
    the ONNX graph, from onnx's own shape inference: an independent reading of model.peak_ram."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    size = {}
    for v in [*g.input, *g.value_info, *g.output]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim][1:]  # per image: not the batch
        size[v.name] = int(np.prod(dims)) if dims else 1
    weights = {i.name for i in g.initializer}
    return max(size[n.input[0]] + size[n.output[0]] for n in g.node if n.op_type in KERNELS
               and n.input[0] not in weights)


@pytest.mark.parametrize("name", ["seed-7932", "seed-11588", "mnist-1.8k", "mnist-18.9k"])
def test_peak_ram_matches_the_onnx_graph(tmp_path, name):
    import torch
    from archsearch import deploy
    g = PRESETS[name].genome
    torch.manual_seed(0)
    model = deploy.Normalized(build_model(g), [0.1], [0.3]).eval()  # untrained: BN at its initial statistics
    path = deploy.to_onnx(model, g.in_shape, tmp_path / "m.onnx")
    assert figures(g)["peak_ram"] == onnx_peak_ram(path)
    x = np.random.default_rng(0).integers(0, 256, (5, *g.in_shape)).astype(np.uint8)
    assert deploy.max_difference(path, model, x) < 1e-3


def test_export_onnx_and_int8_next_to_the_pytorch_files(finished_study, tmp_path):
    d = copy_study(finished_study, tmp_path / "w")
    r = cli("export", "--study", "blobs-b3000", "--int8", "--out", "e", "--device", "cpu", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "max abs difference" in r.stderr and "model.int8.onnx: test" in r.stderr
    assert sorted(p.name for p in (d / "e").iterdir()) == ["config.json", "model.int8.onnx", "model.onnx", "model.py",
                                                           "weights.pt"]
    m = json.loads((d / "e" / "config.json").read_text())["metrics"]
    assert m["onnx_max_abs_diff"] < 1e-4 and m["onnx_test_acc"] == pytest.approx(m["test_acc"], abs=0.01)
    assert 0 <= m["int8_test_acc"] <= 100
    from archsearch import deploy
    labels = np.load(d / "blobs.npz")["y_test"]
    images = np.load(d / "blobs.npz")["x_test"][:, None]
    assert deploy.accuracy(d / "e" / "model.int8.onnx", images, labels) == pytest.approx(m["int8_test_acc"])


def test_without_the_extra_onnx_export_is_one_line(monkeypatch):
    from archsearch import ArchsearchError, deploy
    monkeypatch.setattr(deploy, "_importable", lambda name: name != "onnxruntime")
    with pytest.raises(ArchsearchError, match=r"^ONNX export needs onnxruntime: pip install -e '\.\[deploy\]'$"):
        deploy.require()

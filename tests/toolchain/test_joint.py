"""The jointly trained student (toolchain.crnn.joint): its PyTorch model computes what the ONNX
teacher and the Keras head compute, its fake quantisers give int8's grid, trained weights go back
into the ONNX graph the export reads, and the splits keep measuring data out of learning (the
classroom's by lecture: toolchain/bench/classroom, tested in test_classroom.py).
The PyTorch parts carry the ``torch`` marker: ``make test`` leaves them out (torch is not in the
toolchain's requirements: only the GPU training needs it), ``make test-torch`` runs them with the
CPU wheel the training route installs (see docs/models.md)."""

from __future__ import annotations

import numpy as np
import pytest

from toolchain.crnn.joint import source_half
from toolchain.crnn.writers import split_pages


def test_writer_pages_split_keeps_each_page_on_one_side_and_checks_a_quarter() -> None:
    pages = {f"p{k}": [{"file": f"p{k}_{i}", "page": f"p{k}"} for i in range(n)]
             for k, n in enumerate([4, 36, 33, 35, 46])}
    learn, check = split_pages(pages)
    assert [r["page"] for r in check] == ["p4"] * 46, "the last page alone holds 30 % of 154 lines"
    assert len(learn) == 108 and {r["page"] for r in learn} == {"p0", "p1", "p2", "p3"}
    small_last = {"a": [{"page": "a"}] * 29, "b": [{"page": "b"}] * 34, "c": [{"page": "c"}] * 4,
                  "d": [{"page": "d"}] * 14, "e": [{"page": "e"}] * 3, "f": [{"page": "f"}] * 2}
    learn, check = split_pages(small_last)
    assert {r["page"] for r in check} == {"c", "d", "e", "f"}, "23 of 86 lines: the first page count ≥ 21.5"
    assert len(learn) + len(check) == 86


def test_a_one_page_writer_is_never_split_into_nothing_learnt() -> None:
    learn, check = split_pages({"only": [{"page": "only"}] * 10})
    assert len(learn) == 10 and check == []


def test_dev_halves_keep_a_photos_crops_together() -> None:
    a = "HCIILAB/SCUT-HCCDoc_Dataset_Release:Dataset_part/whole_image/weixin_19482.jpg@fae78f3"
    assert source_half(a + " [crop 30,30,988,75]") == source_half(a + " [crop 30,100,988,65]") == source_half(a)
    halves = {source_half(f"repo:img_{k}.jpg") for k in range(20)}
    assert halves == {0, 1}


@pytest.fixture(scope="module")
def torch_student():
    import onnx

    from edge_ocr.paths import ROOT
    from toolchain.crnn.joint import torch_modules
    from toolchain.crnn.student import load_head, teacher_graph

    _, OnnxBackbone, TorchHead, Student = torch_modules()
    model, _, features = teacher_graph()
    graph = onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], [features])
    weights, cfg = load_head(ROOT / "models" / "crnn_student_zh_en.head.npz")
    top = TorchHead(cfg["classes"], cfg["lstm"], cfg["dropout"])
    top.load_keras(weights)
    return Student(OnnxBackbone(graph), top).eval(), graph, weights, cfg


def _line(width: int = 160) -> np.ndarray:
    """A grey line with strokes (values 0..255), as the runtime normalises one."""
    rng = np.random.default_rng(0)
    line = np.full((48, width), 235.0, np.float32)
    for x in range(8, width - 8, 12):
        line[10:38, x: x + 3] = rng.uniform(20, 60)
        line[20:23, x: x + 10] = rng.uniform(20, 60)
    return line


@pytest.mark.torch
def test_torch_backbone_matches_onnx_runtime_and_weights_go_back_into_the_graph(torch_student) -> None:
    import torch

    from toolchain.common import ort_session
    from toolchain.crnn.student import model_input

    model, graph, _, _ = torch_student
    x = model_input(_line()).transpose(0, 3, 1, 2)
    ref = ort_session(graph).run(None, {graph.graph.input[0].name: x})[0][0, :, 0, :].T
    with torch.no_grad():
        got = model.backbone(torch.from_numpy(x))[0].numpy()
    assert got.shape == ref.shape == (20, 384)
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max()

    from onnx import numpy_helper

    name = next(iter(model.backbone.params))
    saved = model.backbone.params[name].detach().clone()
    with torch.no_grad():
        model.backbone.params[name].mul_(0.5)
        changed = model.backbone(torch.from_numpy(x))[0].numpy()
    written = graph.__class__()
    written.CopyFrom(graph)
    inits = model.backbone.initialisers()
    for i, init in enumerate(written.graph.initializer):
        if init.name in inits:
            written.graph.initializer[i].CopyFrom(numpy_helper.from_array(inits[init.name], init.name))
    with torch.no_grad():
        model.backbone.params[name].copy_(saved)
    back = ort_session(written).run(None, {graph.graph.input[0].name: x})[0][0, :, 0, :].T
    assert np.abs(changed - ref).max() > 1e-2, "halving a convolution's weights changes the frames"
    assert np.abs(back - changed).max() < 1e-3 * np.abs(changed).max(), "the graph computes the torch weights"


@pytest.mark.torch
def test_torch_head_matches_the_keras_head_and_gives_its_weights_back(torch_student) -> None:
    import torch

    from toolchain.crnn.student import head

    model, _, weights, cfg = torch_student
    frames = np.random.default_rng(1).normal(size=(1, 17, 384)).astype(np.float32)
    keras_head = head(cfg, batch_size=1, training=False)
    keras_head.set_weights(weights)
    ref = keras_head(frames)[0].numpy()
    with torch.no_grad():
        got = model.head(torch.from_numpy(frames), torch.tensor([17])).numpy()
    assert np.abs(got - ref).max() < 1e-3
    assert all(np.array_equal(a, b) for a, b in zip(model.head.keras(), weights))


@pytest.mark.torch
def test_fake_quantisation_puts_activations_and_weights_on_an_int8_grid() -> None:
    import torch

    from toolchain.crnn.joint import torch_modules

    ActQuant, _, TorchHead, _ = torch_modules()
    q = ActQuant()
    q.observe, q.enabled = True, False
    x = torch.linspace(-1.0, 3.0, 5000)
    assert torch.equal(q(x), x), "observing alone changes nothing"
    assert (float(q.lo), float(q.hi)) == (-1.0, 3.0)
    q.observe, q.enabled = False, True
    y = q(torch.linspace(-2.0, 5.0, 5000))
    assert len(torch.unique(y)) == 256, "int8: 256 levels"
    assert float(y.min()) == pytest.approx(-1.0, abs=4 / 255) and float(y.max()) == pytest.approx(3.0, abs=4 / 255)

    top = TorchHead(classes=11, lstm=4)
    w = top.classifier.weight.detach()
    from toolchain.crnn.joint import _weight_quant

    wq = _weight_quant(w, True)
    for row, qrow in zip(w, wq):
        step = float(row.abs().max()) / 127
        assert torch.allclose(qrow / step, torch.round(qrow / step), atol=1e-4), "per-channel symmetric grid"
        assert len(torch.unique(qrow)) <= 255

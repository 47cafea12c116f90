import json
from pathlib import Path

import numpy as np
import pytest

from edge_ocr.model.contract import ContractError, ModelContract
from tests.conftest import MODEL


def _raw() -> dict:
    return json.loads(MODEL.with_suffix(".json").read_text(encoding="utf-8"))


def test_shipped_contract_describes_the_model(shipped: Path) -> None:
    from edge_ocr.model.interpreter import TFLiteModel

    c = ModelContract.load(shipped)
    assert c.model_path == shipped and c.model_path.is_file()
    assert c.charset_path.is_file()
    tflite = TFLiteModel(shipped)
    shape = tflite.input_shape
    assert (shape[1], shape[3]) == (c.height, c.channels) and c.blank_index == 0
    assert c.width.multiple % c.time_downsample == 0 or c.time_downsample % c.width.multiple == 0
    width = c.width.width_for(101)
    assert width % c.width.multiple == 0 and width >= 101
    logits = tflite(np.zeros((1, c.height, width, c.channels), np.float32))
    assert logits.shape[1] == width // c.time_downsample, "time_downsample must match the model"
    assert c.width.width_for(10**6) == c.width.max_width
    assert 0 < c.metrics["synthetic_test"]["cer"] < 1 and c.metrics["synthetic_test"]["lines"] >= 1000, \
        "the contract carries the measured figures (their truth on real lines: tests/system/test_accuracy.py)"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["input"].pop("height"), "input.height"),
        (lambda r: r.pop("charset"), "'charset'"),
        (lambda r: r["input"]["width_policy"].update(kind="elastic"), "input.width_policy.kind"),
        (lambda r: r["input"].update(height="32"), "input.height' has the wrong type"),
        (lambda r: r["output"].update(blank_index=5), "output.blank_index"),
    ],
)
def test_bad_contracts_name_the_key(tmp_path: Path, mutate, message: str) -> None:
    raw = _raw()
    mutate(raw)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ContractError, match=message):
        ModelContract.load(path)


def test_missing_and_corrupt_contracts(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="not found"):
        ModelContract.load(tmp_path / "absent.tflite")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    with pytest.raises(ContractError, match="not valid JSON"):
        ModelContract.load(bad)


def test_bucket_policy_picks_smallest_fitting_width(tmp_path: Path) -> None:
    raw = _raw()
    raw["input"]["width_policy"] = {"kind": "buckets", "widths": [640, 160, 320]}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    c = ModelContract.load(path)
    assert [c.width.width_for(w) for w in (10, 160, 161, 700)] == [160, 160, 320, 640]

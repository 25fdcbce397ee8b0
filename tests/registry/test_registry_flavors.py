"""The pickle and directory flavors, and flavor detection."""

import pytest

import cairn
from cairn import InvalidArgument
from cairn.registry import flavors


class Threshold:
    """A plain Python model."""

    def __init__(self, cut):
        self.cut = cut

    def predict(self, xs):
        return [int(x > self.cut) for x in xs]


def test_pickled_python_object(tracking):
    mv = cairn.Client().register_model("rule", Threshold(0.5), input_example=[0.1, 0.9])
    assert mv.flavor == "pickle"
    assert mv.fingerprint == {"class": f"{__name__}:Threshold"}
    assert mv.signature["inputs"]["shape"] == [-1]
    loaded = cairn.models.load("rule/1.0.0")
    assert isinstance(loaded, Threshold) and loaded.predict([0.2, 0.7]) == [0, 1]


def test_directory_of_files(tracking, tmp_path):
    src = tmp_path / "bundle"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (src / "sub" / "vocab.txt").write_text("a\nb\n")
    c = cairn.Client()
    mv = c.register_model("bundle", src)
    assert mv.flavor == "directory"
    path = cairn.models.load("bundle/1.0.0")
    assert (path / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    assert (path / "sub" / "vocab.txt").read_text() == "a\nb\n"
    out = cairn.models.download("bundle/1.0.0", tmp_path / "copy")
    assert (out / "model" / "sub" / "vocab.txt").read_text() == "a\nb\n"
    with pytest.raises(InvalidArgument, match="is not a directory"):
        c.register_model("bundle", src / "weights.bin")


def test_flavor_detection_imports_nothing(data):
    from .conftest import fit_logreg

    assert flavors.detect(fit_logreg(data)) == "sklearn"
    assert flavors.detect(Threshold(1)) == "pickle"
    with pytest.raises(InvalidArgument, match="unknown flavor"):
        flavors.module_for("onnx")


def test_explicit_flavor_must_fit(tracking):
    with pytest.raises(InvalidArgument, match="flavor 'sklearn' does not fit a Threshold"):
        cairn.Client().register_model("rule", Threshold(1), flavor="sklearn")
    with pytest.raises(InvalidArgument, match="cannot pickle"):
        cairn.Client().register_model("lam", lambda x: x)

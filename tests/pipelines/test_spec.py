"""Reading cairn.yaml and dvc.yaml: the subset of DVC's format, and bad pipelines refused
with both names before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cairn.errors import InvalidArgument, NotFound
from cairn.pipelines import load_pipeline


def write(tmp_path: Path, text: str, name: str = "cairn.yaml", **files: str) -> Path:
    for rel, content in files.items():
        (tmp_path / rel).write_text(content)
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_dvc_yaml_with_params_foreach_and_wdir(tmp_path):
    (tmp_path / "sub").mkdir()
    p = write(tmp_path, """\
        stages:
          prepare:
            cmd: python prepare.py ${prepare.split}
            wdir: sub
            deps: [raw.csv, ../code.py]
            params: [prepare.split, {../other.yaml: [seed]}]
            outs:
              - prepared.csv
              - cache_dir: {cache: false, persist: true}
          train:
            foreach:
              small: {size: 10}
              big: {size: 99}
            do:
              cmd: python train.py ${key} ${item.size}
              deps: [sub/prepared.csv]
              metrics:
                - metrics_${key}.json: {cache: false}
        """, name="dvc.yaml", **{"sub/params.yaml": "prepare:\n  split: 0.2\n",
                                 "other.yaml": "seed: 7\n"})
    pl = load_pipeline(tmp_path)  # a directory: cairn.yaml, else dvc.yaml
    assert pl.path == p.resolve()
    prep = pl.stages["prepare"]
    assert prep.cmd == ("python prepare.py 0.2",) and prep.wdir == "sub"
    assert prep.deps == ("sub/raw.csv", "code.py")
    assert prep.params == {"sub/params.yaml:prepare.split": 0.2, "other.yaml:seed": 7}
    assert prep.outs == ("sub/prepared.csv", "sub/cache_dir") and "sub/cache_dir" in prep.persist
    assert pl.stages["train@big"].cmd == ("python train.py big 99",)
    assert pl.stages["train@small"].metrics == ("metrics_small.json",)
    assert pl.upstream["train@big"] == ["prepare"]
    assert pl.order.index("prepare") < pl.order.index("train@small")
    assert pl.select("train") == ["prepare", "train@small", "train@big"] or \
        sorted(pl.select("train")) == ["prepare", "train@big", "train@small"]


def test_cairn_yaml_wins_over_dvc_yaml(tmp_path):
    write(tmp_path, "stages:\n  a:\n    cmd: echo dvc\n", name="dvc.yaml")
    write(tmp_path, "stages:\n  b:\n    cmd: echo cairn\n")
    assert list(load_pipeline(tmp_path).stages) == ["b"]


def test_a_cycle_is_refused_naming_its_stages(tmp_path):
    write(tmp_path, """\
        stages:
          a: {cmd: x, deps: [c.txt], outs: [a.txt]}
          b: {cmd: x, deps: [a.txt], outs: [b.txt]}
          c: {cmd: x, deps: [b.txt], outs: [c.txt]}
        """)
    with pytest.raises(InvalidArgument, match="cycle") as e:
        load_pipeline(tmp_path)
    assert all(n in e.value.message for n in ("a", "b", "c"))


@pytest.mark.parametrize("second", ["out/model.pkl", "out"])
def test_two_stages_writing_the_same_output_are_refused_with_both_names(tmp_path, second):
    write(tmp_path, f"""\
        stages:
          train: {{cmd: x, outs: [out/model.pkl]}}
          tune: {{cmd: y, outs: [{second}]}}
        """)
    with pytest.raises(InvalidArgument, match="stages 'train' and 'tune' both write"):
        load_pipeline(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("vars: [a]\nstages:\n  a: {cmd: x}\n", "'vars' is a DVC key that cairn pipeline does not read"),
    ("stages:\n  a: {cmd: x, frozen: true}\n", "'frozen' is a DVC key"),
    ("stages:\n  a: {cmd: x, always_changed: true}\n", "'always_changed' is a DVC key"),
    ("stages:\n  a: {cmd: x, outs: [{m.pkl: {checkpoint: true}}]}\n", "option 'checkpoint'"),
    ("stages:\n  a: {cmd: x, foo: 1}\n", "unknown key 'foo'"),
    ("stages:\n  a: {deps: [x]}\n", "'cmd' must be a command"),
    ("stages:\n  a: {cmd: x, outs: [../up.txt]}\n", "outside the pipeline's directory"),
    ("stages:\n  a: {cmd: x, outs: [/abs.txt]}\n", "is absolute"),
    ("stages:\n  a: {cmd: x, params: [missing]}\n", "param 'missing' is not in params.yaml"),
    ("stages:\n  a b: {cmd: x}\n", "invalid stage name"),
    ("stages:\n  a: {cmd: 'echo ${item}'}\n", None),
    ("stages: []\n", "'stages' must be a mapping"),
    ("- 1\n", "expected a mapping"),
    ("stages:\n  a: {foreach: [1], do: {cmd: 'x ${nope}'}}\n", None),
    ("stages:\n  a: {foreach: '${list}', do: {cmd: x}}\n", "foreach must be a list or a mapping"),
    ("stages: {a: {cmd: x}\n", "not valid YAML"),
])
def test_bad_pipelines_are_refused_clearly(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text("lr: 1\n")
    (tmp_path / "cairn.yaml").write_text(text)
    if message is None:  # ${...} that names nothing known is left for the shell
        load_pipeline(tmp_path)
        return
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace("$", r"\$")):
        load_pipeline(tmp_path)


def test_a_lone_surrogate_is_refused(tmp_path):
    from cairn.pipelines.spec import parse_pipeline

    with pytest.raises(InvalidArgument, match="surrogate"):
        parse_pipeline({"stages": {"a": {"cmd": "echo \udc80"}}}, tmp_path / "cairn.yaml")


def test_no_pipeline_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no cairn.yaml or dvc.yaml"):
        load_pipeline(tmp_path)
    with pytest.raises(NotFound, match="no stage 'nope'"):
        write(tmp_path, "stages:\n  a: {cmd: x}\n")
        load_pipeline(tmp_path).select("nope")

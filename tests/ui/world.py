"""A store seeded with real runs, models and a data set, for the web UI's tests.

Runs are written as record batches straight to the store (what a training script's
flusher sends), so that hundreds of them take a fraction of a second; artifacts and
registry entries go through the Python client, as a user would make them.
"""

from __future__ import annotations

import json
import math
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cairn.entities import RecordBatch, RunStatus

T0 = 1_767_225_600_000  # 2026-01-01, ms: fixed times make screenshots repeatable


def png(width: int = 64, height: int = 32) -> bytes:
    """A small real PNG (a gradient), written by hand so no imaging library is needed."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 8 % 256, 160))
                                        for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@dataclass
class World:
    root: Path
    experiments: dict[str, str] = field(default_factory=dict)  # name -> id
    runs: dict[str, str] = field(default_factory=dict)  # run name -> id
    running: str = ""
    spiky: str = ""
    versions: list = field(default_factory=list)  # the model "digits"'s ModelVersions
    sweep: list[str] = field(default_factory=list)  # the "sweep" runs' ids, in order
    pipeline: dict[str, str] = field(default_factory=dict)  # lineage node ids by short name


def write_run(store, exp_id: str, exp_name: str, name: str, params: dict, tags: dict,
              metrics: dict[str, tuple], start: int, status: RunStatus | None,
              user: str = "ann") -> str:
    run_id = uuid.uuid4().hex
    create = {"experiment_id": exp_id, "experiment_name": exp_name, "experiment_created_at": T0,
              "name": name, "parent_id": None, "user": user, "start_time": start}
    end = None
    if status is not None:
        end = start + 60_000 + len(name) * 1000
    store.write(RecordBatch(run_id=run_id, writer_id="seed-" + run_id[:8], seq=1, time=start,
                            create=create, params={k: str(v) for k, v in params.items()},
                            tags=tags, metrics=metrics, status=status, end_time=end))
    return run_id


def curve(n: int, start: int, base: float, rate: float, noise: float, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.int64)
    ts = start + steps * 1000
    vals = base * np.exp(-rate * steps / max(n, 1) * 5) + rng.normal(0, noise, n)
    return steps, ts, vals.astype(np.float64)


def seed(root: Path, many: int = 0) -> World:
    """The store at ``root``: experiments "vision" (12 runs: 2 models x 2 lr x 3 seeds, one
    with a spike and a 200k-point series), "nlp" (a RUNNING run), "pipeline" (a lineage
    graph of 8 nodes, see ``_pipeline``), optionally ``many`` small runs in "sweep";
    artifacts; model "digits" with an approval waiting; a data set.
    """
    import cairn

    w = World(root)
    client = cairn.Client(str(root), user="ann")
    store = client.store
    for name in ("vision", "nlp", "pipeline", *(("sweep",) if many else ())):
        w.experiments[name] = client.create_experiment(name).id
    i = 0
    for model in ("cnn", "mlp"):
        for lr in (0.1, 0.01):
            for s in range(3):
                name = f"{model}-lr{lr}-s{s}"
                good = (model == "cnn") * 0.1 + (lr == 0.01) * 0.05
                start = T0 + i * 120_000
                loss = curve(100, start, 2.0 - good * 5, 1.0 + good, 0.02, i)
                acc = (loss[0], loss[1], np.clip(0.6 + good + 0.1 * (1 - loss[2] / 2)
                                                 + np.random.default_rng(i).normal(0, 0.01, 100),
                                                 0, 1))
                metrics = {"loss": loss, "accuracy": acc}
                if i == 0:  # one spike among 200,000 points: the envelope must keep it
                    steps = np.arange(200_000, dtype=np.int64)
                    vals = np.sin(steps / 5000.0)
                    vals[123_457] = 50.0
                    metrics["grad_norm"] = (steps, start + steps, vals)
                w.runs[name] = write_run(store, w.experiments["vision"], "vision", name,
                                         {"model": model, "lr": lr, "seed": s, "epochs": 100},
                                         {"team": "vision", "dataset": "digits"}, metrics, start,
                                         RunStatus.FINISHED if i != 5 else RunStatus.FAILED)
                i += 1
    w.spiky = w.runs["cnn-lr0.1-s0"]
    w.running = write_run(store, w.experiments["nlp"], "nlp", "bert-live", {"model": "bert"},
                          {"team": "nlp"}, {"loss": curve(20, T0, 3.0, 1.0, 0.01, 99)}, T0, None)
    w.runs["bert-live"] = w.running
    for j in range(many):
        start = T0 + j * 1000
        params = {"lr": 10 ** -(1 + j % 4), "width": 32 * (1 + j % 8), "seed": j % 5}
        score = (np.array([0]), np.array([start]), np.array([math.sin(j) + 1.0]))
        w.sweep.append(write_run(store, w.experiments["sweep"], "sweep", f"sweep-{j:05d}",
                                 params, {}, {"score": score}, start, RunStatus.FINISHED))

    # Artifacts: text, JSON and an image, through the client as a user would log them.
    files = root.parent / "artifact-files"
    files.mkdir(exist_ok=True)
    (files / "notes.txt").write_text("training went fine\nsecond line\n")
    (files / "config.json").write_text(json.dumps({"model": "cnn", "layers": [32, 64]}))
    (files / "curve.png").write_bytes(png())
    (files / "preds.csv").write_text('id,label,comment\n1,cat,"fluffy, small"\n2,dog,ok\n')
    for f in ("notes.txt", "config.json", "curve.png", "preds.csv"):
        client.log_artifact(w.spiky, files / f)
    _data(client, root, w)
    _registry(client, root, w)
    _pipeline(client, root, w)
    return w


def _data(client, root: Path, w: World) -> None:
    """Data set "digits-data": two versions (a row added, a file added), read by one run."""
    src = root.parent / "data-files"
    (src / "train").mkdir(parents=True, exist_ok=True)
    (src / "test").mkdir(exist_ok=True)
    rows = "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40))
    (src / "train" / "part.csv").write_text("a,b,label\n" + rows)
    (src / "test" / "part.csv").write_text("a,b,label\n" + rows[:60])
    client.data.add(src, "digits-data", "first cut")
    (src / "train" / "part.csv").write_text("a,b,label\n" + rows + "40,5,0\n")
    (src / "README.md").write_text("digits, as CSV\n")
    client.data.add(src, "digits-data", "one more row, a README", aliases=["gold"],
                    expect=["label not null", "rows >= 10"])
    client.log_input(w.runs["cnn-lr0.01-s0"], "digits-data@2")


def _registry(client, root: Path, w: World) -> None:
    """Model "digits": 1.0.0 in Production, the next version (its run read a data set, so a
    major bump) waiting for an approval to go there."""
    import cairn
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9], [0.1, 0.0], [0.9, 1.0]])
    y = np.array([0, 1, 0, 1, 0, 1])
    for C, run in ((1.0, "cnn-lr0.1-s1"), (0.1, "cnn-lr0.01-s0")):
        w.versions.append(client.register_model("digits", LogisticRegression(C=C).fit(X, y),
                                                run_id=w.runs[run], params={"C": C}))
    bo = cairn.Client(str(root), user="bo")
    client.set_stage_policy("digits", "production", approvals=1)
    req = client.request_transition("digits", "1.0.0", "production", comment="first release")
    bo.approve(req.id, comment="looks good")
    client.set_alias("digits", "champion", "1.0.0")
    client.request_transition("digits", w.versions[1].version, "production",
                              comment="better accuracy")


def _pipeline(client, root: Path, w: World) -> None:
    """A lineage graph of 8 nodes in experiment "pipeline": data set "reviews"@1 split by
    run "prep" into "reviews.train"@1 and "reviews.test"@1, which runs "finetune-a" and
    "finetune-b" read, each registering a version of model "sentiment" (trained on both)."""
    from sklearn.linear_model import LogisticRegression

    exp = w.experiments["pipeline"]
    src = root.parent / "pipeline-files"
    src.mkdir(exist_ok=True)
    (src / "reviews.csv").write_text("text,stars,label\n" + "".join(
        f"review {i},{1 + i % 5},{int(i % 5 >= 3)}\n" for i in range(60)))
    raw = client.data.add(src / "reviews.csv", "reviews", "scraped reviews")
    prep = write_run(client.store, exp, "pipeline", "prep", {"split": "80/20"}, {}, {},
                     T0, RunStatus.FINISHED)
    parts = client.data.split(raw.ref, {"train": 0.8, "test": 0.2}, seed=1, run_id=prep)
    w.pipeline.update({"raw": f"dataset:{raw.ref}", "prep": f"run:{prep}",
                       "train": f"dataset:{parts['train'].ref}",
                       "test": f"dataset:{parts['test'].ref}"})
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9]])
    y = np.array([0, 1, 0, 1])
    for i, tag in enumerate(("a", "b")):
        run = write_run(client.store, exp, "pipeline", f"finetune-{tag}",
                        {"model": "bert", "lr": 10 ** -(4 + i)}, {}, {}, T0 + 60_000 * (i + 1),
                        RunStatus.FINISHED)
        client.log_input(run, parts["train"].ref, role="train")
        client.log_input(run, parts["test"].ref, role="val")
        mv = client.register_model("sentiment", LogisticRegression().fit(X, y), run_id=run)
        w.pipeline[f"finetune-{tag}"] = f"run:{run}"
        w.pipeline[f"sentiment-{tag}"] = f"model:sentiment@{mv.version}"

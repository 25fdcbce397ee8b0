"""Quickstart, data edition: version a data set, split it, train on it, see the model's lineage.

Run it directly:       python examples/quickstart_data.py   (needs scikit-learn; pyarrow for stats)
Then look around:      cairn data ls
                       cairn data diff digits@1 digits@2
                       cairn lineage model:digits-sgd@<version printed below>
"""

import csv
import tempfile
from pathlib import Path

import cairn
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score

work = Path(tempfile.mkdtemp(prefix="cairn-quickstart-"))
X, y = load_digits(return_X_y=True)  # ships with scikit-learn: nothing is downloaded


def write_csv(path: Path, rows: np.ndarray, labels: np.ndarray) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"p{i}" for i in range(rows.shape[1])] + ["label"])
        for r, label in zip(rows, labels):
            w.writerow([int(v) for v in r] + [int(label)])


def read_csv(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    lines = data.decode().splitlines()[1:]
    table = np.array([[float(v) for v in line.split(",")] for line in lines])
    return table[:, :-1], table[:, -1].astype(int)


# 1. Version the raw data: v1 with the first 1500 images, v2 with all of them.
raw = work / "raw"
raw.mkdir()
write_csv(raw / "digits.csv", X[:1500], y[:1500])
v1 = cairn.data.add(raw, name="digits", message="first 1500 images",
                    expect=["label not null", "rows >= 1000"])
write_csv(raw / "digits.csv", X, y)
v2 = cairn.data.add(raw, name="digits", message="all images", aliases=["gold"])
print(f"versioned {v1.ref} and {v2.ref} ({v2.files} file, {v2.size:,} bytes)")

with cairn.start_run(name="prepare") as prep:
    # 2. A derived version: pixels scaled to [0, 1], recorded with the run that made it.
    scaled = work / "scaled"
    scaled.mkdir()
    write_csv(scaled / "digits.csv", X * 100 // 16, y)  # percent of full intensity
    features = cairn.data.derive([v2.ref], scaled, name="digits-features",
                                 transform={"scale": "x / 16 (as a percentage)"})
    # 3. Deterministic splits, stratified by label: the same seed gives the same files.
    parts = cairn.data.split(features.ref, {"train": 0.8, "test": 0.2}, seed=42,
                             stratify="label")
print(f"split {features.ref} into " + ", ".join(p.ref for p in parts.values()))

# 4. Train on the train split; the run logs which data it read, the model records the run.
with cairn.start_run(name="train") as run:
    cairn.log_input(parts["train"].ref, role="train")
    cairn.log_input(parts["test"].ref, role="eval")
    ds = cairn.Client().data
    X_tr, y_tr = read_csv(ds.objects.read_bytes(ds.files(parts["train"])[0]))
    X_te, y_te = read_csv(ds.objects.read_bytes(ds.files(parts["test"])[0]))
    model = SGDClassifier(loss="log_loss", random_state=0).fit(X_tr / 100, y_tr)
    accuracy = accuracy_score(y_te, model.predict(X_te / 100))
    cairn.log_metric("test_accuracy", accuracy)
    version = cairn.log_model(model, "digits-sgd")
print(f"trained digits-sgd@{version.version}: test accuracy {accuracy:.3f}")

# 5. The model's lineage, back to the raw data set versions.
from cairn.lineage import render  # noqa: E402
from rich.console import Console  # noqa: E402

Console().print(render(cairn.Client().lineage(f"model:digits-sgd@{version.version}")))

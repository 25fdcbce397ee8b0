"""Quickstart: train a small scikit-learn model over a few settings and seeds, tracked by Cairn.

Run it with `make demo`, or directly:  python examples/quickstart.py
Then look at the runs:                 cairn runs ls -e quickstart
"""

import os
import sys
from pathlib import Path

import cairn
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)  # ships with scikit-learn: nothing is downloaded
X = X / 16.0
classes = np.unique(y)

cairn.set_experiment("quickstart")
for alpha in (1e-4, 1e-3, 1e-2):
    for seed in (0, 1, 2):
        X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.25, random_state=seed)
        params = {"model": "SGDClassifier", "loss": "log_loss", "alpha": alpha, "seed": seed,
                  "epochs": 15}
        with cairn.start_run(params=params, tags={"dataset": "digits"}) as run:
            model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=seed)
            for epoch in range(params["epochs"]):
                model.partial_fit(X_tr, y_tr, classes=classes)
                run.log({
                    "train_loss": log_loss(y_tr, model.predict_proba(X_tr), labels=classes),
                    "val_loss": log_loss(y_val, model.predict_proba(X_val), labels=classes),
                    "val_accuracy": accuracy_score(y_val, model.predict(X_val)),
                }, step=epoch)
            cairn.log_dict({"coef_shape": list(model.coef_.shape)}, "model/summary.json")
        print(f"run {run.name}: alpha={alpha} seed={seed} "
              f"val_accuracy={accuracy_score(y_val, model.predict(X_val)):.3f}")

print(f"\nrecorded 9 runs in {cairn.get_tracking_uri()}")
if os.environ.get("CAIRN_QUICKSTART_HINT") != "0":  # `make demo` prints it once, at its end
    cli = Path(sys.executable).with_name("cairn")  # this environment's, not whatever is on PATH
    print(f"web UI: http://127.0.0.1:5000/  (start it with: {cli} --store "
          f"{cairn.get_tracking_uri()} ui)")

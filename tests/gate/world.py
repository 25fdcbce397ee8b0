"""Prepared candidates for the gate's tests: real scikit-learn models, trained in real runs
and registered through the real registry of whatever store a Client opens."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXPERIMENT = "fraud-training"
WEIGHTS = np.array([1.5, -1.0, 0.5, 0.0, 0.0])


def fit(seed: int, noise: float, C: float = 1.0):
    """A logistic regression on data whose labels carry ``noise``; (model, val AUC, X)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 5))
    y = (X @ WEIGHTS + rng.normal(scale=noise, size=400) > 0).astype(int)
    model = LogisticRegression(C=C).fit(X[:300], y[:300])
    auc = float(roc_auc_score(y[300:], model.predict_proba(X[300:])[:, 1]))
    return model, auc, X


@dataclass
class Trained:
    version: str | None
    run_ids: list[str] = field(default_factory=list)
    aucs: list[float] = field(default_factory=list)


def train(client, *, noise: float, seeds=(0,), C: float = 1.0, name: str = "fraud",
          register: bool = True, dataset: str | None = None, latency: float | None = None,
          per_run: list[dict] | None = None, late: dict | None = None) -> Trained:
    """One run per seed (params noise, C, seed; metric val_auc, and ``per_run[i]``'s
    metrics in the i-th run); the first seed's model is registered as a new version of
    ``name`` from its run, which then logs ``late`` (metrics the version does not hold)."""
    exp = client.get_or_create_experiment(EXPERIMENT)
    out = Trained(None)
    for i, seed in enumerate(seeds):
        model, auc, X = fit(seed, noise, C)
        run = client.create_run(exp.id)
        client.log_batch(run.id, params={"noise": noise, "C": C, "seed": seed})
        client.log_metric(run.id, "val_auc", auc)
        if latency is not None:
            client.log_metric(run.id, "latency_ms", latency)
        for k, v in ((per_run or [{}] * len(seeds))[i]).items():
            client.log_metric(run.id, k, v)
        if dataset is not None:
            client.log_input(run.id, dataset, "train")
        if i == 0 and register:
            mv = client.register_model(name, model, run_id=run.id, input_example=X[:5])
            out.version = mv.version
            for k, v in (late or {}).items():
                client.log_metric(run.id, k, v)
        client.set_terminated(run.id)
        out.run_ids.append(run.id)
        out.aucs.append(auc)
    return out

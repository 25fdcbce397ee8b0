"""Quickstart, part 2: register a model, promote it through an approval, roll it back.

Run it after (or without) examples/quickstart.py:   python examples/quickstart_registry.py
Then look at the registry:    cairn models versions digits-classifier
                              cairn models history digits-classifier
                              cairn audit verify
"""

import cairn
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

NAME = "digits-classifier"
X, y = load_digits(return_X_y=True)  # ships with scikit-learn: nothing is downloaded
X_tr, X_val, y_tr, y_val = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)

cairn.set_experiment("quickstart-registry")
versions = []
for C in (1.0, 0.1):  # the second training run changes a hyperparameter: a MINOR bump
    with cairn.start_run(params={"C": C}) as run:
        model = LogisticRegression(C=C, max_iter=200).fit(X_tr, y_tr)
        cairn.log_metric("val_accuracy", model.score(X_val, y_val))
        mv = cairn.log_model(model, name=NAME, input_example=X_val[:5])
    versions.append(mv)
    print(f"registered {mv.uri} ({mv.bump}: {'; '.join(mv.bump_reasons)})")

# Production needs one approval, by someone other than the requester.
ann, bo = cairn.Client(user="ann"), cairn.Client(user="bo")
ann.set_stage_policy(NAME, "production", approvals=1)
for mv in versions:
    req = ann.request_transition(NAME, mv.version, "production", comment=f"candidate {mv.version}")
    try:
        ann.approve(req.id)
    except cairn.PermissionDenied as exc:
        print(f"as expected: {exc.message.split(';')[0]}")
    req = bo.approve(req.id, comment="metrics look good")
    live = cairn.models.load(f"{NAME}@production", check_inputs=X_val[:5])
    print(f"request {req.id} {req.status}: production serves {mv.version}, "
          f"val accuracy {live.score(X_val, y_val):.3f}")

# Something is wrong with the new version: put the previous one back, in one audited step.
restored = ann.rollback(NAME, "production", reason="latency regression in 1.1.0")
print(f"rolled back: production serves {restored.uri} again")

print("\nstage history:")
for e in ann.model_history(NAME):
    if e.kind in ("stage", "rollback"):
        print(f"  {e.when:%H:%M:%S} {e.actor:4} {e.version} {e.from_value} -> {e.to_value}"
              f"  {e.reason}")
report = ann.verify_audit_log()
print(f"\naudit log: {report.checked} events, chain {'intact' if report.ok else 'BROKEN'}")

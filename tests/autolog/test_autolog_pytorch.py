"""PyTorch: the plain-loop Tracker, and the Lightning logger when Lightning is installed."""

import warnings

import pytest

import cairn

torch = pytest.importorskip("torch", reason="needs PyTorch: pip install 'cairn[pytorch]'")
from cairn.autolog.pytorch import Tracker, track  # noqa: E402


def tiny_problem(n=64):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 4, generator=g)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    return X, y, model


def train(tracker, model, opt, X, y, epochs=3, batch=16, sched=None):
    for _ in range(epochs):
        for i in range(0, len(X), batch):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(X[i:i + batch]), y[i:i + batch])
            loss.backward()
            opt.step()
            tracker.log(loss=loss)
        if sched is not None:
            sched.step()
        tracker.epoch(epoch_loss=loss)


def test_tracker_logs_params_lr_schedule_grad_norms_metrics_and_model(tracking, tmp_path):
    X, y, model = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with track(model, opt, sched, data=X, targets=y, grad_norm=True, params={"seed": 0},
               log_every_n_steps=1) as t:
        train(t, model, opt, X, y, sched=sched)
    c = cairn.Client()
    r = c.get_run(t._given_run.id if t._given_run else c.search_runs()[0].id)
    assert r.status is cairn.RunStatus.FINISHED and r.tags["cairn.autolog.framework"] == "pytorch"
    assert r.params["model.class"] == "torch.nn.modules.container.Sequential"
    assert r.params["model.parameters"] == str(4 * 8 + 8 + 8 + 1)
    assert r.params["optimizer.class"] == "torch.optim.sgd.SGD"
    assert r.params["optimizer.lr"] == "0.1" and r.params["optimizer.momentum"] == "0.9"
    assert r.params["scheduler.class"] == "torch.optim.lr_scheduler.StepLR"
    assert r.params["scheduler.gamma"] == "0.5" and r.params["seed"] == "0"
    lr = c.get_metric_history(r.id, "lr")
    assert lr.steps.tolist() == list(range(1, 13))  # one per optimizer step, 1-based
    assert lr.values.tolist() == [0.1] * 4 + [0.05] * 4 + [0.025] * 4  # the schedule
    loss = c.get_metric_history(r.id, "loss")
    assert loss.steps.tolist() == list(range(1, 13)) and loss.values[-1] < loss.values[0]
    gn = c.get_metric_history(r.id, "grad_norm")
    assert gn.steps.tolist() == list(range(1, 13)) and (gn.values > 0).all()
    assert c.get_metric_history(r.id, "epoch_loss").steps.tolist() == [0, 1, 2]
    assert r.tags["cairn.input.shape"] == "[64, 4]" and r.tags["cairn.input.target_shape"] == "[64, 1]"
    assert [e.path for e in c.list_artifacts(r.id)] == [
        "model/cairn_model.json", "model/state_dict.pt", "model_summary.txt"]
    out = c.download_artifacts(r.id, "model", tmp_path)
    state = torch.load(out / "state_dict.pt", weights_only=True)
    assert torch.equal(state["0.weight"], model.state_dict()["0.weight"])
    assert opt._optimizer_step_pre_hooks == {} and opt._optimizer_step_post_hooks == {}


def test_tracker_in_a_user_run_thins_steps_and_keeps_the_run_open(tracking):
    X, y, model = tiny_problem()
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr": 0.01},
                            {"params": model[2].parameters(), "lr": 0.001}])
    with cairn.start_run() as run:
        with Tracker(model, opt, log_every_n_steps=4, log_models=False) as t:
            train(t, model, opt, X, y)
        assert cairn.active_run() is run  # the tracker did not end the user's run
    c = cairn.Client()
    r = c.get_run(run.id)
    assert r.params["optimizer.group_0.lr"] == "0.01" and r.params["optimizer.group_1.lr"] == "0.001"
    assert c.get_metric_history(run.id, "lr/group_1").steps.tolist() == [4, 8, 12]
    assert c.get_metric_history(run.id, "loss").steps.tolist() == [4, 8, 12]
    assert "grad_norm" not in r.metrics
    assert [e.path for e in c.list_artifacts(run.id)] == ["model_summary.txt"]


def test_by_default_every_tenth_step_is_logged(tracking):
    X, y, model = tiny_problem(n=320)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with track(model, opt, log_models=False) as t:
        train(t, model, opt, X, y, epochs=1)  # 20 steps
    c = cairn.Client()
    [r] = c.search_runs()
    assert c.get_metric_history(r.id, "lr").steps.tolist() == [10, 20]
    assert c.get_metric_history(r.id, "loss").steps.tolist() == [10, 20]
    with pytest.raises(RuntimeError, match="not started"):
        t.log(loss=1.0, step=3)
    with pytest.raises(ValueError, match="log_every_n_steps"):
        Tracker(model, opt, log_every_n_steps=0)


def test_a_failing_loop_fails_the_run_and_logs_no_model(tracking):
    X, y, model = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="diverged"):
        with track(model, opt) as t:
            train(t, model, opt, X, y, epochs=1)
            raise RuntimeError("diverged")
    [r] = cairn.Client().search_runs()
    assert r.status is cairn.RunStatus.FAILED
    assert [e.path for e in cairn.Client().list_artifacts(r.id)] == ["model_summary.txt"]


# -- Lightning ---------------------------------------------------------------------------
def lightning_module(pl):
    class Regressor(pl.LightningModule):
        def __init__(self, lr=0.05, hidden=8):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)}

    return Regressor


@pytest.fixture
def pl():
    pl = pytest.importorskip("lightning.pytorch", reason="needs lightning: pip install 'cairn[lightning]'")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    return pl


def fit(pl, module, **trainer_options):
    X, y, _ = tiny_problem()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1, **trainer_options)
    with warnings.catch_warnings():
        # Lightning's own warnings about this tiny setup (few workers, small log interval)
        warnings.filterwarnings("ignore", module=r"lightning\.")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        trainer.fit(module, loader, loader)
    return trainer


@pytest.mark.slow
def test_lightning_logger_records_hparams_and_logged_metrics(tracking, pl, tmp_path):
    from cairn.autolog.lightning import CairnLogger

    logger = CairnLogger(log_model=True)
    fit(pl, lightning_module(pl)(lr=0.02), logger=logger, default_root_dir=tmp_path)
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.status is cairn.RunStatus.FINISHED and r.id == logger.version
    assert r.params["lr"] == "0.02" and r.params["hidden"] == "8"
    assert len(c.get_metric_history(r.id, "train_loss")) == 12  # 4 steps x 3 epochs
    assert len(c.get_metric_history(r.id, "val_loss")) == 3
    assert [e.path for e in c.list_artifacts(r.id)] == ["checkpoints/epoch=2-step=12.ckpt"]


@pytest.mark.slow
def test_lightning_autolog_adds_the_logger_optimizer_lr_and_model(tracking, pl):
    cairn.autolog.lightning.autolog()
    trainer = fit(pl, lightning_module(pl)(), logger=False, enable_checkpointing=False)
    assert trainer.loggers == []  # the user's trainer is left as it was
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.params["optimizer.class"] == "torch.optim.adam.Adam" and r.params["optimizer.lr"] == "0.05"
    lr = c.get_metric_history(r.id, "lr")
    assert lr.steps.tolist() == [0, 1, 2] and lr.values.tolist() == [0.05, 0.025, 0.0125]
    assert len(c.get_metric_history(r.id, "train_loss")) == 12
    assert [e.path for e in c.list_artifacts(r.id)] == ["model/cairn_model.json", "model/state_dict.pt"]

"""Hugging Face transformers: a tiny BERT built from a config (nothing is downloaded)."""

import json

import pytest

import cairn

pytestmark = [
    pytest.mark.slow,  # importing transformers and torch takes seconds
]

torch = pytest.importorskip("torch", reason="needs PyTorch: pip install 'cairn[transformers]'")
transformers = pytest.importorskip("transformers",
                                   reason="needs transformers: pip install 'cairn[transformers]'")
pytest.importorskip("accelerate", reason="Trainer needs accelerate: pip install 'cairn[transformers]'")
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

from cairn.autolog.transformers import CairnCallback  # noqa: E402


class TokenDataset(torch.utils.data.TensorDataset):
    """Token ids and labels as the dict items Trainer's default collator wants."""

    def __getitem__(self, i):
        ids, labels = super().__getitem__(i)
        return {"input_ids": ids, "labels": labels}


@pytest.fixture
def setup(tmp_path):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (32, 8), generator=g)
    dataset = TokenDataset(ids, (ids[:, 0] > 20).long())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    model = BertForSequenceClassification(config)

    def make_args(**options):
        return TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2,
                                 per_device_train_batch_size=8, logging_steps=2, save_strategy="no",
                                 use_cpu=True, disable_tqdm=True, learning_rate=1e-3, seed=0,
                                 **options)

    return model, dataset, make_args


def test_report_to_cairn_logs_args_config_metrics_and_model(tracking, setup, tmp_path):
    model, dataset, make_args = setup
    args = make_args(report_to="cairn", eval_strategy="epoch")
    trainer = Trainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset)
    assert any(isinstance(cb, CairnCallback) for cb in trainer.callback_handler.callbacks)
    trainer.train()
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.status is cairn.RunStatus.FINISHED and r.tags["cairn.autolog.framework"] == "transformers"
    assert r.params["learning_rate"] == "0.001" and r.params["num_train_epochs"] == "2"
    assert r.params["per_device_train_batch_size"] == "8"
    assert r.params["config.hidden_size"] == "16" and r.params["config.num_hidden_layers"] == "1"
    assert r.params["model.class"].endswith("BertForSequenceClassification")
    loss = c.get_metric_history(r.id, "loss")
    assert loss.steps.tolist() == [2, 4, 6, 8]  # logging_steps=2 over 8 optimizer steps
    assert c.get_metric_history(r.id, "eval_loss").steps.tolist() == [4, 8]
    assert {"learning_rate", "grad_norm", "train_runtime", "train_loss", "epoch"} <= set(r.metrics)
    paths = [e.path for e in c.list_artifacts(r.id)]
    assert {"model/config.json", "model/model.safetensors", "model/cairn_model.json"} <= set(paths)
    out = c.download_artifacts(r.id, "model", tmp_path / "dl")
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 16
    restored = BertForSequenceClassification.from_pretrained(out)  # a local directory, no hub
    sample = dataset[:4]["input_ids"]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(sample).logits, model(sample).logits)


def test_autolog_adds_the_callback_and_records_the_data_set(tracking, setup):
    model, dataset, make_args = setup
    cairn.autolog.transformers.autolog(log_models=False)
    trainer = Trainer(model=model, args=make_args(report_to="none"), train_dataset=dataset)
    trainer.train()
    assert not any(isinstance(cb, CairnCallback) for cb in trainer.callback_handler.callbacks)
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.tags["cairn.input.shape"] == "[32, 8]" and r.tags["cairn.input.target_shape"] == "[32]"
    assert r.tags["cairn.input.digest"].startswith("sha256:")
    assert len(c.get_metric_history(r.id, "loss")) == 4
    assert c.list_artifacts(r.id) == []
    # The TensorDataset's token ids and labels are the run's training data set.
    assert r.tags["cairn.input.dataset"] == "Default.train@1"
    assert c.data.catalog.run_inputs(r.id) == [("Default.train", 1, "train")]
    ids, labels = c.data.load_array("Default.train@1")
    assert (ids == dataset.tensors[0].numpy()).all() and (labels == dataset.tensors[1].numpy()).all()


def test_a_failing_train_marks_the_autolog_run_failed(tracking, setup):
    model, dataset, make_args = setup
    cairn.autolog.transformers.autolog()

    class Boom(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("boom")

    trainer = Trainer(model=model, args=make_args(report_to="none"), train_dataset=dataset,
                      callbacks=[Boom()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    [r] = cairn.Client().search_runs()
    assert r.status is cairn.RunStatus.FAILED and r.params["num_train_epochs"] == "2"
    assert cairn.active_run() is None

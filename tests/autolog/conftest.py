"""Shared by the autolog tests: offline frameworks, and no patch outliving its test."""

import os

import pytest

# Set before any framework is imported: Keras 3 runs on PyTorch here (no TensorFlow), and
# nothing may reach a model hub.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(autouse=True)
def _autolog_off():
    """Every test starts and ends with all integrations unpatched and system metrics off."""
    import cairn

    yield
    cairn.autolog(disable=True)  # unpatches, drops pending import hooks, system metrics off

"""The registry's optional naming policy, and names every registry accepts."""

import pytest

import cairn
from cairn import InvalidArgument
from cairn.registry.naming import make_policy

from .conftest import fit_logreg


def test_template_policy_is_enforced_on_register(tracking, data):
    c = cairn.Client()
    c.register_model("legacy", fit_logreg(data))  # before the policy: kept as is
    c.set_naming_policy(template="{project}_{model_type}")
    with pytest.raises(InvalidArgument, match=r"does not follow this registry's naming policy "
                                              r"\(template '\{project\}_\{model_type\}'\); use a "
                                              r"name such as 'project_model-type'"):
        c.register_model("fraud-detector", fit_logreg(data))
    assert "fraud-detector" not in {m.name for m in c.list_registered_models()}
    assert c.register_model("payments_fraud-detector", fit_logreg(data)).version == "1.0.0"
    assert c.register_model("legacy", fit_logreg(data)).version == "1.0.1"  # existing models
    c.set_naming_policy(regex=r"team-[a-z]+\..+")
    c.register_model("team-risk.scorer", fit_logreg(data))
    with pytest.raises(InvalidArgument, match="regex"):
        c.create_registered_model("other")
    c.set_naming_policy()  # removed
    c.create_registered_model("other", description="anything goes again")
    assert c.get_naming_policy() is None


def test_bad_policies():
    with pytest.raises(InvalidArgument, match="needs at least one"):
        make_policy("plain", None)
    with pytest.raises(InvalidArgument, match="does not compile"):
        make_policy(None, "(")
    with pytest.raises(InvalidArgument, match="not both"):
        make_policy("{a}", "b")
    assert make_policy("{a}.{b}", None).pattern.fullmatch("x.y-z")

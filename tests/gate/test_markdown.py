"""The Markdown report: a verdict line, one table row per check, failures spelled out, and
text from users (metric names, reasons) escaped so it cannot break the table."""

from cairn.gate import GateSpec, check, render
from cairn.gate.markdown import escape
from world import train


def rows(text):
    return [line for line in text.splitlines() if line.startswith("| ")]


def cells(row):
    # Split on the pipes that are not escaped: what a Markdown table renderer does.
    import re

    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_the_report_of_a_failed_gate(client, fraud):
    base, cand = fraud
    spec = GateSpec().merged(rules=["val_auc > baseline", "val_auc >= 0.99"],
                             require=["signature"], significance=0.05)
    text = render(check(client, "fraud@candidate", spec))
    assert text.splitlines()[0] == \
        "### ❌ cairn check: fraud 1.1.0 fails 2 of 3 checks against fraud 1.0.0 (@\u200bproduction)"  # noqa: E501
    assert "Significance: one-sided welch test at 0.05 across seed." in text
    header, *body = rows(text)
    assert cells(header) == ["rule", "candidate", "baseline", "threshold", "p-value", "verdict"]
    assert "|---|---|---|---:|---|---|" in text
    assert len(body) == 3  # one row per check
    first, second, third = (cells(r) for r in body)
    assert first[0] == "val\\_auc > baseline" and first[-1] == "✅ pass"
    assert first[1] == f"{cand.aucs[0]:.6g}" and first[2] == f"{base.aucs[0]:.6g}"
    assert first[4].endswith("(3 vs 3 runs)") and float(first[4].split()[0]) < 0.05
    assert second[-1] == "❌ fail" and second[3] == "0.99"
    assert second[4] == "not applicable (absolute threshold)"
    assert third[:2] == ["signature", "missing"]
    assert "- signature: fraud 1.1.0: not signed" in text
    assert "**Failed:**" in text
    assert f"- val\\_auc >= 0.99: val\\_auc {cand.aucs[0]:.6g} is not >= 0.99" in text


def test_names_with_pipes_and_markup_are_escaped(client):
    base = train(client, noise=3.0, seeds=(0,), late={"p|r <b>*": 0.5})
    client.transition_model_version_stage("fraud", base.version, "production")
    cand = train(client, noise=0.5, seeds=(10,), late={"p|r <b>*": 0.7})
    spec = GateSpec().merged(rules=['"p|r <b>*" >= baseline'])
    text = render(check(client, f"fraud/{cand.version}", spec))
    [row] = rows(text)[1:]  # after the header: the rule
    assert cells(row)[0] == '"p\\|r \\<b>\\*" >= baseline'
    assert len(cells(row)) == 6
    import re

    assert not re.search(r"(?<!\\)<", text)  # no raw HTML tag reaches the comment
    # The value came from the run (logged after registration), and the report says so.
    assert f"_candidate values from run {cand.run_ids[0]}_" in text


def test_escape():
    assert escape("a|b") == "a\\|b"
    assert escape("x\n| y") == "x \\| y"
    assert escape("[link](javascript:x)") == "\\[link\\](javascript:x)"
    assert escape("`code`") == "\\`code\\`"


def test_mentions_and_references_do_not_notify_anyone():
    # GitHub links @name and #123 in the rendered text, where a backslash is gone.
    import re

    for text in ("@octocat", "ping @org/team now", "see #123", "a\n@admin"):
        out = escape(text)
        assert not re.search(r"[@#][\w-]", out), out
        assert out.replace("\u200b", "").replace("\\", "") == " ".join(text.split())
    assert escape("a@b.c") == "a@\u200bb.c"
    assert escape("x @ y") == "x @ y"  # a lone sign is left as it is


def test_a_metric_named_as_a_mention_is_broken_in_the_report(client):
    import re

    base = train(client, noise=3.0, seeds=(0,), late={"@admins": 0.5})
    client.transition_model_version_stage("fraud", base.version, "production")
    cand = train(client, noise=0.5, seeds=(10,), late={"@admins": 0.7})
    spec = GateSpec().merged(rules=['"@admins" >= baseline + 1'])
    text = render(check(client, f"fraud/{cand.version}", spec))
    assert "@admins" not in text and "@\u200badmins" in text
    assert not re.search(r"@\w", text)

"""A gate's result as GitHub-flavoured Markdown, for a pull-request comment."""

from __future__ import annotations

import re

from .result import FAIL, PASS, Check, GateResult

ICONS = {PASS: "✅", FAIL: "❌", "skipped": "⏭️"}
# Characters that would end a table cell or start markup inside one.
_SPECIAL = re.compile(r"([\\|`*_\[\]<#~])")
# GitHub turns @name into a mention (a notification to that user or team) and #123 into a
# link after Markdown is rendered, so a backslash does not stop it: a zero-width space
# after the sign does.
_MENTION = re.compile(r"([@#])(?=[\w-])")


def escape(text: str) -> str:
    """``text`` safe inside a table cell: markup characters escaped, line breaks joined,
    @mentions and #references broken."""
    return _MENTION.sub("\\1\u200b", _SPECIAL.sub(r"\\\1", " ".join(str(text).split())))


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _p(c: Check) -> str:
    if c.test is not None and c.test.p_value is not None:
        return f"{c.test.p_value:.3g} ({c.test.n_candidate} vs {c.test.n_baseline} runs)"
    return escape(c.test_note) if c.test_note else ""


def render(result: GateResult, title: str = "cairn check") -> str:
    """The report: a verdict line, a table of every check, then why each failure failed."""
    icon = ICONS[PASS] if result.passed else ICONS[FAIL]
    lines = [f"### {icon} {escape(title)}: {escape(result.summary())}", ""]
    if result.significance is not None:
        lines += [f"Significance: one-sided {escape(result.test)} test at "
                  f"{result.significance:g} across {escape(', '.join(result.across))}.", ""]
    lines += ["| rule | candidate | baseline | threshold | p-value | verdict |",
              "|---|---|---|---:|---|---|"]
    for c in result.checks:
        cand, base = (escape(x) for x in c.cells())
        verdict = f"{ICONS.get(c.verdict, '')} {c.verdict}"
        lines.append(f"| {escape(c.rule)} | {cand} | {base} | {_num(c.threshold)} | {_p(c)} "
                     f"| {verdict} |")
    failures = result.failures
    if failures:
        lines += ["", "**Failed:**", ""]
        lines += [f"- {escape(c.rule)}: {escape(c.reason)}" for c in failures]
    sources = sorted({f"{who} values from {src}" for c in result.checks
                      for who, src in (("candidate", c.candidate_source),
                                       ("baseline", c.baseline_source))
                      if src and src != "version"})
    extra = [*result.notes, *sources]
    if extra:
        lines += [""] + [f"_{escape(n)}_" for n in extra]
    return "\n".join(lines) + "\n"

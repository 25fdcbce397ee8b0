"""`import cairn` and the CLI's start load nothing of the webhooks package; the signing
helper a receiver uses needs only the standard library."""

import subprocess
import sys


def loaded_after(statement, modules):
    code = (f"{statement}\nimport sys\n"
            f"print(' '.join(sorted(m for m in {modules!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_cairn_loads_no_webhooks():
    mods = ("cairn.webhooks", "cairn.webhooks.service", "cairn.webhooks.dispatch")
    assert loaded_after("import cairn", mods) == []
    assert loaded_after("import cairn.cli.main", mods) == []


def test_the_signing_helper_needs_no_database():
    assert loaded_after("import cairn.webhooks.signing", ("sqlalchemy", "urllib.request")) == []

"""Capture the environment a run executes in: code version, interpreter, packages, hardware.

``capture_environment()`` returns a fresh JSON-serialisable dict::

    git          {"commit", "branch", "dirty", "diff_digest", "remote"} or None
    python       {"version", "implementation", "executable"}
    packages     {distribution name: version}
    os           {"system", "release", "machine", "platform"}
    cpu          {"model", "count"}
    gpus         [{"index", "name", "memory_total_mb", "driver"}, ...]
    argv         sys.argv
    entry_point  the main script's absolute path, "-m module", "-c" or None
    hostname, user

The process-level parts are computed once per process and git state once per working
directory, so calling it per run costs microseconds.  ``capture_environment_async()``
does the first, slow capture on a background thread.  Nothing here raises for a missing
git, GPU or ``/proc``; GPUs are found through NVML or ``nvidia-smi``, never by importing
a deep-learning framework.  This module imports nothing from cairn.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["capture_environment", "capture_environment_async", "clear_environment_cache"]

_TIMEOUT_S = 3.0
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree

_lock = threading.Lock()
_process: dict[str, Any] | None = None
_git: dict[str, dict[str, Any] | None] = {}
_combined: dict[str, dict[str, Any]] = {}
_real: dict[str, str] = {}  # cwd -> its realpath: a run's start resolved it twice


def _resolve(cwd: str | None) -> str:
    path = cwd if cwd is not None else os.getcwd()
    real = _real.get(path)
    if real is None:
        real = _real[path] = os.path.realpath(path)
    return real


def capture_environment(cwd: str | None = None, shared: bool = False) -> dict[str, Any]:
    """The environment of this process, with git state for ``cwd`` (default: the cwd).

    ``shared=True`` returns the cached dict itself, which the caller must not modify: run
    creation only serialises it, and copying ~50 nested entries per run was a measurable
    part of creating one.
    """
    global _process
    key = _resolve(cwd)
    with _lock:
        if _process is None:
            _process = _capture_process()
        if key not in _git:
            _git[key] = _capture_git(key)
        env = _combined.get(key)
        if env is None:
            env = _combined[key] = {"git": _git[key], **_process}
    return env if shared else _copy(env)


def capture_environment_async(cwd: str | None = None, shared: bool = False) -> Future[dict[str, Any]]:
    """Like :func:`capture_environment`, but computed on a daemon thread.

    Once the caches are warm the returned future is already done, so callers that
    create many runs pay no thread start.
    """
    key = _resolve(cwd)
    future: Future[dict[str, Any]] = Future()
    if _process is not None and key in _git:
        future.set_result(capture_environment(key, shared))
        return future

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(capture_environment(key, shared))
        except BaseException as exc:  # handed to whoever reads .result()
            future.set_exception(exc)

    threading.Thread(target=work, name="cairn-environment", daemon=True).start()
    return future


def clear_environment_cache() -> None:
    """Forget cached state, e.g. after the working tree changed or in tests."""
    global _process
    with _lock:
        _process = None
        _git.clear()
        _combined.clear()
        _real.clear()


def _copy(value: Any) -> Any:
    # Callers get their own dict; cheaper than copy.deepcopy for this JSON-shaped data.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _run(args: list[str]) -> bytes | None:
    """stdout of a command, or None when it is missing, fails or times out."""
    env = {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(args, env=env, capture_output=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _capture_git(cwd: str) -> dict[str, Any] | None:
    git = shutil.which("git")
    if git is None or not os.path.isdir(cwd):
        return None

    def out(*args: str) -> bytes | None:
        return _run([git, "-C", cwd, *args])

    if out("rev-parse", "--is-inside-work-tree") != b"true\n":
        return None
    commit = out("rev-parse", "--verify", "-q", "HEAD")
    branch = out("symbolic-ref", "--short", "-q", "HEAD")  # None when detached
    remote = out("config", "--get", "remote.origin.url")
    base = commit.decode().strip() if commit else _EMPTY_TREE
    diff = out("diff", "--no-ext-diff", "--no-color", "--binary", base)  # tracked files only
    return {
        "commit": commit.decode().strip() if commit else None,
        "branch": branch.decode().strip() if branch else None,
        "dirty": bool(diff),
        "diff_digest": hashlib.sha256(diff).hexdigest() if diff else None,
        "remote": _strip_credentials(remote.decode().strip()) if remote else None,
    }


def _strip_credentials(url: str) -> str:
    """Drop passwords and tokens; keep an ssh user name such as ``git@``."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url  # a path or scp-like "git@host:org/repo.git": no secret in it
    userinfo, _, host = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    if parts.scheme in ("http", "https") or not user:
        netloc = host  # a lone http user name is usually a token
    else:
        netloc = f"{user}@{host}" if has_password else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc))


def _capture_process() -> dict[str, Any]:
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": _packages(),
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "gpus": _gpus(),
        "argv": list(sys.argv),
        "entry_point": _entry_point(),
        "hostname": socket.gethostname(),
        "user": _user(),
    }


def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]  # None for a broken install
        if name and name not in found:  # the first on sys.path is the one imported
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _entry_point() -> str | None:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # python -m module
        return "-m " + spec.name.removesuffix(".__main__")
    script = sys.argv[0] if sys.argv else ""
    if script in ("", "-", "-c"):
        return script or None
    return os.path.realpath(script)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no passwd entry, as in some containers
        return None


def _gpus() -> list[dict[str, Any]]:
    gpus = _gpus_nvml()
    return gpus if gpus is not None else _gpus_nvidia_smi()


def _gpus_nvml() -> list[dict[str, Any]] | None:
    """GPUs through NVML (``nvidia-ml-py``), or None when it is absent or fails."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError (no driver): fall back to nvidia-smi
        return None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            total = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            name = _text(pynvml.nvmlDeviceGetName(handle))
            gpus.append(_gpu(i, name, total // 2**20, driver))
        return gpus
    except Exception:  # any NVMLError part way through
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _gpus_nvidia_smi() -> list[dict[str, Any]]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = "--query-gpu=index,name,memory.total,driver_version"
    out = _run([smi, query, "--format=csv,noheader,nounits"])
    gpus = []
    for line in (out or b"").decode(errors="replace").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not fields[0].isdigit():
            continue
        mib = fields[2].removesuffix("MiB").strip()
        gpus.append(_gpu(int(fields[0]), fields[1], int(mib) if mib.isdigit() else None, fields[3]))
    return gpus


def _gpu(index: int, name: str, memory_total_mb: int | None, driver: str) -> dict[str, Any]:
    return {"index": index, "name": name, "memory_total_mb": memory_total_mb, "driver": driver}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

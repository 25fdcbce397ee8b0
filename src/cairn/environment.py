"""Capture the environment a run executes in: code version, interpreter, packages, hardware.

``capture_environment()`` returns a fresh JSON-serialisable dict::

    git          {"commit", "branch", "dirty", "diff_digest", "remote", "root", "patch",
                  "untracked", "skipped"} or None
    source       {"root", "files", "skipped"}: source files of the main script's directory
                 (the cwd for ``python -m``) where there is no git, else None
    cwd          the working directory the git state was read for
    python       {"version", "implementation", "executable"}
    packages     {distribution name: version}
    os           {"system", "release", "machine", "platform"}
    cpu          {"model", "count"}
    gpus         [{"index", "name", "memory_total_mb", "driver"}, ...]
    argv         sys.argv, the values of options named like secrets redacted
    entry_point  the main script's absolute path, "-m module", "-c" or None
    process      {"id", "pid", "started"}: tells the runs of one process apart from others
    env_vars     {name: value} of the allow-listed environment variables (never secrets)
    container    {"runtime", "image", "image_digest"} when in a container, else None
    package_sources {name: {"url", "editable"}} of packages not installed from an index
    hostname, user

What ``cairn reproduce`` needs to rebuild the code is kept as content-addressed objects:
``git.patch`` (the uncommitted diff), ``git.untracked`` and ``source.files`` ({path: oid})
name them, and :func:`source_blobs` hands their bytes to whoever stores the run (the run
writer puts them in the store's object store once per process).  Untracked files larger
than ``CAIRN_CAPTURE_SOURCE_MAX_FILE`` or beyond ``CAIRN_CAPTURE_SOURCE_MAX_TOTAL`` are
listed in ``skipped`` instead.

The process-level parts are computed once per process and git state once per working
directory, so calling it per run costs microseconds.  ``capture_environment_async()``
does the first, slow capture on a background thread.  Nothing here raises for a missing
git, GPU or ``/proc``; GPUs are found through NVML or ``nvidia-smi``, never by importing
a deep-learning framework.  This module imports nothing from cairn.
"""

from __future__ import annotations

import contextlib
import fnmatch
import getpass
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["capture_environment", "capture_environment_async", "clear_environment_cache",
           "redact_argv", "source_blobs", "source_oids", "ENV_VAR_ALLOW", "REDACTED",
           "SECRET_FILES", "SECRET_WORDS"]

_TIMEOUT_S = 3.0
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree

_lock = threading.Lock()
_process: dict[str, Any] | None = None
_git: dict[str, dict[str, Any] | None] = {}
_combined: dict[str, dict[str, Any]] = {}
_real: dict[str, str] = {}  # cwd -> its realpath: a run's start resolved it twice
_blobs: dict[str, bytes] = {}  # oid -> content of a patch or source file captured here

# Read here, not through cairn.settings: this module is a leaf (see docs/settings.md).
MAX_FILE_VAR, MAX_TOTAL_VAR = "CAIRN_CAPTURE_SOURCE_MAX_FILE", "CAIRN_CAPTURE_SOURCE_MAX_TOTAL"
ENV_VARS_VAR = "CAIRN_CAPTURE_ENV_VARS"
DEFAULT_MAX_FILE, DEFAULT_MAX_TOTAL = 1_000_000, 10_000_000
_MAX_SNAPSHOT_SCAN = 5_000  # entries a snapshot without git looks at, at most
# Every run of the process records the environment: keep it small whatever the tree holds.
MAX_SOURCE_FILES = 500  # source files stored (their paths and oids are in every run's env)
_MAX_SKIPPED_LISTED = 20  # skipped files named; the rest are counted
#: Environment variables recorded on every run (fnmatch patterns): what changes results.
ENV_VAR_ALLOW = (
    "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "TOKENIZERS_PARALLELISM", "KERAS_BACKEND",
    "CAIRN_*",
)
#: Never recorded, whatever the allow-list says: a name containing one of these words.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH", "COOKIE")
# CAIRN_* names that say where this process writes, not how it computes.
_NOT_RECORDED = ("CAIRN_TRACKING_URI", "CAIRN_SPOOL_DIR", "CAIRN_REPRODUCE_OF",
                 "CAIRN_REPRODUCE_STORE")
_SOURCE_SUFFIXES = (".py", ".pyx", ".pxd", ".toml", ".cfg", ".ini", ".txt", ".yaml", ".yml",
                    ".json", ".sh", ".md", ".r", ".sql", ".lock")
_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox",
              ".mypy_cache", ".pytest_cache", ".ruff_cache", ".cairn", "site-packages", ".eggs"}


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
            git = _git[key]
            source = None if git is not None else _snapshot(key, _process.get("entry_point"))
            env = _combined[key] = {"git": git, "source": source, "cwd": key, **_process}
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
        _blobs.clear()


def source_oids(env: Any) -> list[str]:
    """The oids of the patch and source files ``env`` (a captured environment) names."""
    out: list[str] = []
    if not isinstance(env, dict):
        return out
    git = env.get("git")
    if isinstance(git, dict):
        if isinstance(git.get("patch"), str):
            out.append(git["patch"])
        if isinstance(git.get("untracked"), dict):
            out.extend(v for v in git["untracked"].values() if isinstance(v, str))
    source = env.get("source")
    if isinstance(source, dict) and isinstance(source.get("files"), dict):
        out.extend(v for v in source["files"].values() if isinstance(v, str))
    return out


def source_blobs(env: Any) -> dict[str, bytes]:
    """oid -> bytes of what ``env`` names and this process captured (for the object store)."""
    return {oid: _blobs[oid] for oid in source_oids(env) if oid in _blobs}


def _keep(data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    _blobs[oid] = data
    return oid


def _size_limit(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    units = {"kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "kb": 1000, "mb": 1000 ** 2,
             "gb": 1000 ** 3, "k": 1000, "m": 1000 ** 2, "g": 1000 ** 3, "b": 1}
    for unit, factor in units.items():
        if raw.endswith(unit):
            raw, mult = raw[: -len(unit)].strip(), factor
            break
    else:
        mult = 1
    try:
        return max(0, int(float(raw) * mult))
    except ValueError:
        return default


class _Budget:
    """What the size limits leave for source files; what did not fit is listed."""

    def __init__(self) -> None:
        self.max_file = _size_limit(MAX_FILE_VAR, DEFAULT_MAX_FILE)
        self.left = _size_limit(MAX_TOTAL_VAR, DEFAULT_MAX_TOTAL)
        self.files = 0
        self.skipped: list[dict[str, Any]] = []
        self.unlisted = 0

    def skip(self, rel: str, size: int | None, reason: str) -> None:
        if len(self.skipped) < _MAX_SKIPPED_LISTED:
            self.skipped.append({"path": rel, "size": size, "reason": reason})
        else:
            self.unlisted += 1

    def listing(self) -> list[dict[str, Any]]:
        if not self.unlisted:
            return self.skipped
        return [*self.skipped, {"path": f"({self.unlisted} more)", "size": None,
                                "reason": "not stored either"}]

    def take(self, rel: str, path: str) -> str | None:
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.skip(rel, None, f"unreadable: {exc.strerror}")
            return None
        size = st.st_size
        if stat.S_ISLNK(st.st_mode):  # its target may be anywhere: ~/.ssh, a data mount
            self.skip(rel, None, "a symbolic link (not followed)")
            return None
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the capture for ever
            self.skip(rel, None, "not a regular file")
            return None
        if _secret_file(rel):
            self.skip(rel, size, "named like a secret (never stored)")
            return None
        if self.files >= MAX_SOURCE_FILES:
            self.skip(rel, size, f"more than {MAX_SOURCE_FILES} files")
            return None
        if size > self.max_file:
            self.skip(rel, size, f"larger than {MAX_FILE_VAR}")
            return None
        if size > self.left:
            self.skip(rel, size, f"over {MAX_TOTAL_VAR}")
            return None
        try:
            with open(path, "rb") as f:
                data = f.read(self.max_file + 1)
        except OSError as exc:
            self.skip(rel, size, f"unreadable: {exc.strerror}")
            return None
        self.left -= len(data)
        self.files += 1
        return _keep(data)


#: Untracked files never stored, whatever the limits (fnmatch patterns on the lower-case
#: file name): what holds credentials rather than code.
SECRET_FILES = (
    ".env", ".env.*", "*.env", ".netrc", "_netrc", ".pgpass", ".pypirc", ".npmrc",
    ".git-credentials", ".htpasswd", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*secret*", "*credential*", "*password*",
    "*passwd*", "*token*",
)


def _secret_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1].lower()
    if name.endswith((".py", ".pyx", ".pxd")) and not name.startswith("."):
        return False  # code (tokenizer.py, secret_sharing.py): what reproducing needs
    return any(fnmatch.fnmatchcase(name, p) for p in SECRET_FILES)


def _not_source(rel: str) -> bool:
    """Untracked paths that are never code: stores, virtualenvs, caches, compiled files."""
    parts = rel.split("/")
    return rel.endswith((".pyc", ".pyo")) or any(
        p in _SKIP_DIRS or p.startswith(".cairn") for p in parts[:-1])


def _installed(directory: str) -> bool:
    """Whether ``directory`` is inside this interpreter's installation or virtualenv."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return any(directory == p or directory.startswith(p + os.sep) for p in prefixes)


def _snapshot(cwd: str, entry_point: Any) -> dict[str, Any] | None:
    """Source files where there is no git to name the code: the main script's directory
    (where its imports are found), or the cwd for ``python -m``; none for an interactive
    session or a program installed in the environment (pytest, a console script)."""
    if isinstance(entry_point, str) and entry_point.startswith("-m "):
        # `python -m pytest` runs an installed module: the cwd is no more its code than
        # pytest's console script's directory would be.
        main = getattr(sys.modules.get("__main__"), "__spec__", None)
        origin = getattr(main, "origin", None)
        if isinstance(origin, str) and _installed(os.path.dirname(os.path.realpath(origin))):
            return None
        root = cwd
    elif isinstance(entry_point, str) and os.path.isabs(entry_point):
        root = os.path.dirname(entry_point)
        if _installed(root):
            return None
    else:
        return None
    if not os.path.isdir(root) or root in (os.path.expanduser("~"), os.sep):
        return None
    budget = _Budget()
    files: dict[str, str] = {}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            seen += 1
            if seen > _MAX_SNAPSHOT_SCAN:
                budget.skip(os.path.relpath(dirpath, root), None,
                            f"more than {_MAX_SNAPSHOT_SCAN} files looked at")
                return {"root": root, "files": files, "skipped": budget.listing()}
            if not name.lower().endswith(_SOURCE_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            oid = budget.take(rel, path)
            if oid is not None:
                files[rel] = oid
    return {"root": root, "files": files, "skipped": budget.listing()}


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
    top = out("rev-parse", "--show-toplevel")
    root = os.fsdecode(top.rstrip(b"\n")) if top else None
    base = commit.decode().strip() if commit else _EMPTY_TREE
    diff = out("diff", "--no-ext-diff", "--no-color", "--binary", base)  # tracked files only
    budget = _Budget()
    patch = None
    if diff:
        if len(diff) <= budget.left:
            patch = _keep(diff)  # its oid is diff_digest: both are the SHA-256 of the diff
            budget.left -= len(diff)
        else:
            budget.skip("(uncommitted diff)", len(diff), f"over {MAX_TOTAL_VAR}")
    untracked: dict[str, str] = {}
    listed = _run([git, "-C", root, "ls-files", "--others", "--exclude-standard", "-z"]) \
        if root else None
    for raw in sorted((listed or b"").split(b"\0")):
        rel = os.fsdecode(raw)
        if rel and not _not_source(rel):
            oid = budget.take(rel, os.path.join(root or cwd, rel))
            if oid is not None:
                untracked[rel] = oid
    return {
        "commit": commit.decode().strip() if commit else None,
        "branch": branch.decode().strip() if branch else None,
        "dirty": bool(diff),
        "diff_digest": hashlib.sha256(diff).hexdigest() if diff else None,
        "remote": _strip_credentials(remote.decode().strip()) if remote else None,
        "root": root,
        "patch": patch,
        "untracked": untracked,
        "skipped": budget.listing(),
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
        "argv": redact_argv(sys.argv),
        "entry_point": _entry_point(),
        "process": {"id": uuid.uuid4().hex, "pid": os.getpid(), "started": time.time_ns() // 1_000_000},
        "env_vars": _env_vars(),
        "container": _container(),
        "package_sources": _package_sources(),
        "hostname": socket.gethostname(),
        "user": _user(),
    }


#: What an argument that holds a secret is recorded as (see :func:`redact_argv`).
REDACTED = "<redacted>"


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


_STRONG_WORDS = tuple(w for w in SECRET_WORDS if w not in ("KEY", "AUTH"))
_WEAK_WORDS = {"KEY", "APIKEY", "AUTH", "AUTHORIZATION"}


def _secret_option(name: str) -> bool:
    """An option named like a secret: a word of its name holds TOKEN, SECRET, PASSWORD...,
    or is KEY or AUTH (``--api-key``, ``--auth``; not ``--author`` nor ``--monkey``)."""
    words = name.upper().replace("_", "-").replace(".", "-").split("-")
    return any(any(s in w for s in _STRONG_WORDS) or w in _WEAK_WORDS for w in words)


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` as recorded: the value of an option whose name says it is a secret
    (``--password x``, ``--api-key=x``: see :func:`_secret_option`) is :data:`REDACTED`,
    and a URL's password or token is dropped."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        if arg.startswith("-") and len(arg) > 1 and arg != "--":
            name, eq, _ = arg.partition("=")
            if _secret_option(name.lstrip("-")):
                if eq:
                    out.append(f"{name}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(_strip_credentials(arg) if "://" in arg else arg)
    return out


def _env_vars() -> dict[str, str]:
    extra = [p.strip() for p in os.environ.get(ENV_VARS_VAR, "").split(",") if p.strip()]
    patterns = (*ENV_VAR_ALLOW, *extra)
    out = {}
    for name in sorted(os.environ):
        if name in _NOT_RECORDED or _secret_name(name):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            out[name] = _strip_credentials(os.environ[name]) if "://" in os.environ[name] \
                else os.environ[name]
    return out


def _container() -> dict[str, Any] | None:
    """The container this process runs in: CAIRN_IMAGE / CAIRN_IMAGE_DIGEST when set (a
    Dockerfile's ENV, a CI job), podman's /run/.containerenv, or cgroup hints."""
    image, digest = os.environ.get("CAIRN_IMAGE") or None, os.environ.get("CAIRN_IMAGE_DIGEST") or None
    runtime = None
    try:
        with open("/run/.containerenv", encoding="utf-8", errors="replace") as f:
            runtime = "podman"
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "image" and not image:
                    image = value.strip('"') or None
                elif key == "imageid" and not digest:
                    digest = value.strip('"') or None
    except OSError:
        pass
    if runtime is None and os.path.exists("/.dockerenv"):
        runtime = "docker"
    if runtime is None:
        try:
            with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as f:
                text = f.read()
            for hint in ("kubepods", "docker", "containerd", "lxc"):
                if hint in text:
                    runtime = "kubernetes" if hint == "kubepods" else hint
                    break
        except OSError:
            pass
    if runtime is None and image is None and digest is None:
        return None
    return {"runtime": runtime, "image": image, "image_digest": digest}


def _package_sources() -> dict[str, dict[str, Any]]:
    """Packages installed from a directory, a file or a VCS URL (PEP 610), not an index."""
    out: dict[str, dict[str, Any]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name in out:
            continue
        try:
            text = dist.read_text("direct_url.json")
        except Exception:  # an unreadable dist-info: nothing to say about it
            continue
        if not text:
            continue
        try:
            info = json.loads(text)
        except ValueError:
            continue
        url = info.get("url") if isinstance(info, dict) else None
        if isinstance(url, str):
            editable = bool((info.get("dir_info") or {}).get("editable"))
            out[name] = {"url": _strip_credentials(url), "editable": editable}
    return dict(sorted(out.items()))


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

"""TLS for clients of a Cairn server: which certificates they trust, and what a failed
handshake means, in words.

Every connection a client opens to a Cairn server (the tracking store, ``cairn sync``,
the registry, data sets and collaboration over a server) goes through one
:class:`~cairn.store.http.HttpStore`, whose transport takes its context from
:func:`client_context`; nothing else here opens connections.

Like every store module this reads no settings: the CA bundle and the verify switch
come as plain values (``CAIRN_CA_BUNDLE``, ``CAIRN_TLS_VERIFY`` through
:mod:`cairn.store_settings`).  ``ssl`` is imported on first use, not with ``cairn``.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, TLSError

if TYPE_CHECKING:
    import ssl

__all__ = ["client_context", "tls_error"]

_warned_insecure: set[str] = set()
_warn_lock = threading.Lock()
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


def client_context(url: str, ca_bundle: str = "", verify: bool = True) -> ssl.SSLContext:
    """The context for connections to the server at ``url``.

    ``ca_bundle``: a PEM file, or a directory of PEM files, whose certificates are the
    only ones trusted (the server's own CA); empty: the system's CAs (``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` apply), else certifi's when the system has none.  ``verify=False``
    checks nothing, with a warning on stderr once per server.
    """
    import ssl

    if not verify:
        _warn_insecure(url)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle:
        return _bundle_context(os.path.expanduser(ca_bundle))
    ctx = ssl.create_default_context()
    if not ctx.cert_store_stats().get("x509_ca") and not _has_capath():
        # No system store (a python.org build on macOS before "Install Certificates"):
        # certifi, which httpx would have used, rather than trusting nothing.
        try:
            import certifi
        except ImportError:  # pragma: no cover - httpx depends on it
            pass
        else:
            ctx.load_verify_locations(cafile=certifi.where())
    return ctx


def _has_capath() -> bool:
    import ssl

    capath = ssl.get_default_verify_paths().capath
    return bool(capath) and os.path.isdir(capath) and any(os.scandir(capath))


def _bundle_context(path: str) -> ssl.SSLContext:
    import ssl

    where = f"the CA bundle {path} (CAIRN_CA_BUNDLE)"
    # Not create_default_context, which adds the system's CAs: the bundle's are the only ones.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if os.path.isdir(path):
        # A plain directory of PEM files: OpenSSL's capath alone would want hashed names
        # (c_rehash); load every certificate in it, and take the hashed names as well.
        pems = []
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            try:
                if entry.is_file():
                    with open(entry.path, "rb") as f:
                        data = f.read(16 << 20)
                    if _PEM_CERT in data:
                        pems.append(data.decode("ascii", "replace"))
            except OSError:
                continue
        try:
            if pems:
                ctx.load_verify_locations(cadata="\n".join(pems))
            ctx.load_verify_locations(capath=path)
        except ssl.SSLError as exc:
            raise InvalidArgument(f"{where}: a certificate in it does not load: "
                                  f"{exc.reason or exc}") from None
        if not pems:
            raise InvalidArgument(f"{where} is a directory with no PEM certificate in it")
        return ctx
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 20)
    except FileNotFoundError:
        raise InvalidArgument(f"{where} does not exist") from None
    except OSError as exc:
        raise InvalidArgument(f"{where} cannot be read: {exc.strerror or exc}") from None
    if _PEM_CERT not in data:
        raise InvalidArgument(f"{where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidArgument(f"{where} does not load: {getattr(exc, 'reason', None) or exc}") \
            from None
    return ctx


def _warn_insecure(url: str) -> None:
    with _warn_lock:
        if url in _warned_insecure:
            return
        _warned_insecure.add(url)
    print(f"cairn: warning: CAIRN_TLS_VERIFY is off: the certificate of {url} is not checked, "
          "so anyone on the network path can read and change what is sent, API token "
          "included; set CAIRN_CA_BUNDLE to the server's CA instead", file=sys.stderr)


def tls_error(url: str, exc: BaseException, ca_bundle: str = "") -> TLSError | None:
    """The :class:`TLSError` for a failed connection to ``url`` when TLS is what failed
    (``exc``: the transport's exception, whose cause chain holds ssl's), or when an
    ``http://`` URL names a server that speaks TLS; None otherwise.  ``ca_bundle``: what
    the client trusted, for the advice."""
    import ssl

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            reason = cur.verify_message or cur.reason or str(cur)
            if ca_bundle:
                advice = (f"CAIRN_CA_BUNDLE={ca_bundle} does not hold the CA that signed it, "
                          "or the certificate does not name this host")
            else:
                advice = "set CAIRN_CA_BUNDLE to the server's CA certificate (a PEM file)"
            return TLSError(f"the certificate of the Cairn server at {url} does not verify: "
                            f"certificate verify failed: {reason}; {advice}", reason=str(reason))
        if isinstance(cur, ssl.SSLError):
            reason = cur.reason or str(cur)
            hint = ""
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                          "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):
                hint = " (is it a plain http:// server?)"
            return TLSError(f"the TLS handshake with the Cairn server at {url} failed: "
                            f"{reason}{hint}", reason=str(reason))
        cur = cur.__cause__ or cur.__context__
    # A TLS server hangs up on plain http without a word; an outage must not be assumed
    # (the client would spool for a server that never takes plain http): ask in TLS.
    if url.startswith("http://") and type(exc).__name__ == "RemoteProtocolError" \
            and _speaks_tls(url):
        return TLSError(f"the Cairn server at {url} speaks TLS: use https://"
                        f"{url[len('http://'):]}", reason="http to a TLS port")
    return None


def _speaks_tls(url: str, timeout: float = 3.0) -> bool:
    """Whether the server at ``url`` completes a TLS handshake (its certificate unchecked:
    nothing is sent over it)."""
    import socket
    import ssl
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return False
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as raw:
            with ctx.wrap_socket(raw):
                return True
    except (OSError, ValueError):
        return False

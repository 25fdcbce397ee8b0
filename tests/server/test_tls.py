"""TLS (#21): `cairn server --tls-cert --tls-key` serves https, and every client verifies
the server's certificate (system CAs, or CAIRN_CA_BUNDLE), failing with a TLSError that
names the server and the reason, never falling back to plain http or going "offline".

One real `cairn server` process with a certificate from a CA made here (for 127.0.0.1),
shared by the module; Cairn's client, `cairn sync` and the real mlflow client talk to it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from serving import CAIRN, free_port

import cairn
from cairn.cli.server import checked_tls
from cairn.errors import InvalidArgument, TLSError
from cairn.store import close_stores
from cairn.store.http import HttpStore


def _write_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, and an unrelated
    self-signed certificate and key; PEM files in ``d``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca: bool, sans=()) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 issuer_key.public_key()), critical=False))
        if ca:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        else:
            b = (b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False))
        return b.sign(issuer_key, hashes.SHA256())

    def pem_key(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = cert(name("Cairn test CA"), ca_key, name("Cairn test CA"), ca_key, ca=True)
    server = cert(name("127.0.0.1"), server_key, ca.subject, ca_key, ca=False,
                  sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost")])
    other = cert(name("someone else"), other_key, name("someone else"), other_key, ca=True)
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM),
             "cert": server.public_bytes(serialization.Encoding.PEM),
             "key": pem_key(server_key),
             "other_cert": other.public_bytes(serialization.Encoding.PEM),
             "other_key": pem_key(other_key)}
    paths = {}
    for label, data in files.items():
        paths[label] = d / f"{label}.pem"
        paths[label].write_bytes(data)
    (d / "cas").mkdir()
    (d / "cas" / "team-ca.crt").write_bytes(files["ca"])  # a plain directory of PEM files
    paths["ca_dir"] = d / "cas"
    return paths


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    return _write_pki(tmp_path_factory.mktemp("pki"))


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([*CAIRN, *args], env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            # Not longer: a TLS connection the mlflow client keeps alive holds a graceful
            # stop for Python's TLS shutdown timeout (30 s); the store is thrown away.
            proc.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def tls_server(pki, tmp_path_factory):
    """(https URL, server log): `cairn server --workers 2` on a local store, with TLS."""
    d = tmp_path_factory.mktemp("tls-server")
    port = free_port()
    proc = _start(["server", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                   "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])],
                  {"CAIRN_TRACKING_URI": str(d / "store")}, d / "server.log")
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(pki["ca"]))
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"cairn server exited: {(d / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/ready", verify=trust, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield url, d / "server.log"
    finally:
        _stop(proc)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private spool, and no TLS settings from the environment running the tests."""
    for name in ("CAIRN_CA_BUNDLE", "CAIRN_TLS_VERIFY", "SSL_CERT_FILE", "SSL_CERT_DIR",
                 "CAIRN_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    yield monkeypatch
    close_stores("http", "https")


def _server_runs(url: str, ca: Path, tmp_path: Path, experiment: str) -> list:
    """What the server holds in ``experiment``, asked by a client that trusts its CA."""
    store = HttpStore(url, ca_bundle=str(ca), spool_dir=tmp_path / "reader-spool")
    try:
        exp = store.get_experiment_by_name(experiment)
        return [] if exp is None else store.search_runs([exp.id])[0]
    finally:
        store.close()


@pytest.mark.slow
def test_a_client_trusting_the_ca_logs_a_run_and_reads_it_back_over_https(
        tls_server, pki, env, cairn_state):
    url, log = tls_server
    assert f"https://127.0.0.1:{url.rsplit(':', 1)[1]}" in log.read_text()  # logs its https URL
    env.setenv("CAIRN_CA_BUNDLE", str(pki["ca"]))
    cairn.set_tracking_uri(url)
    cairn.set_experiment("over-tls")
    with cairn.start_run(params={"lr": 0.1}) as run:
        for step in range(5):
            cairn.log_metric("loss", 1 / (step + 1), step=step)
        cairn.log_text("hello", "notes/a.txt")
    client = cairn.Client(url)
    got = client.get_run(run.id)
    assert got.status is cairn.RunStatus.FINISHED and got.params == {"lr": "0.1"}
    assert len(client.get_metric_history(run.id, "loss")) == 5
    assert [e.path for e in client.list_artifacts(run.id)] == ["notes/a.txt"]


@pytest.mark.slow
def test_a_directory_of_ca_certificates_is_a_bundle_too(tls_server, pki, env, tmp_path):
    store = HttpStore(tls_server[0], ca_bundle=str(pki["ca_dir"]), spool_dir=tmp_path / "sp")
    assert store.create_experiment("from-a-ca-directory").name == "from-a-ca-directory"
    store.close()


@pytest.mark.slow
def test_without_the_ca_the_run_fails_with_a_clear_error_and_nothing_is_sent(
        tls_server, pki, env, tmp_path, cairn_state):
    url = tls_server[0]
    cairn.set_tracking_uri(url)
    # Not "unreachable, the run starts offline": a certificate is no outage.
    with pytest.raises(TLSError) as err:
        cairn.set_experiment("untrusted")
        with cairn.start_run():
            cairn.log_metric("loss", 1.0)
    msg = err.value.message
    assert url in msg and "certificate verify failed" in msg and "CAIRN_CA_BUNDLE" in msg
    assert "self-signed" in msg or "unable to get local issuer" in msg
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file() and
                "journal" in p.parts]  # nothing waits to be re-sent
    assert _server_runs(url, pki["ca"], tmp_path, "untrusted") == []


@pytest.mark.slow
def test_a_bundle_without_the_servers_ca_is_refused_naming_the_bundle(tls_server, pki, env,
                                                                      tmp_path):
    env.setenv("CAIRN_CA_BUNDLE", str(pki["other_cert"]))
    with pytest.raises(TLSError, match=r"does not verify: certificate verify failed: .*"
                                       r"CAIRN_CA_BUNDLE=.*other_cert\.pem does not hold"):
        cairn.Client(tls_server[0]).search_runs(None)
    env.setenv("CAIRN_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidArgument, match=r"missing\.pem \(CAIRN_CA_BUNDLE\) does not exist"):
        HttpStore(tls_server[0], spool_dir=tmp_path / "sp").list_experiments()


@pytest.mark.slow
def test_plain_http_to_the_tls_port_is_refused_not_taken_for_an_outage(tls_server, env,
                                                                       tmp_path):
    http_url = tls_server[0].replace("https://", "http://")
    store = HttpStore(http_url, spool_dir=tmp_path / "sp")
    with pytest.raises(TLSError, match=r"speaks TLS: use https://127\.0\.0\.1:\d+$"):
        store.list_experiments()
    store.close()


@pytest.mark.slow
def test_https_to_a_plain_http_port_is_a_tls_error(env, tmp_path):
    # A socket that answers TLS hellos with plain http, as an http server would.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]

    def answer() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    import threading

    threading.Thread(target=answer, daemon=True).start()
    store = HttpStore(f"https://127.0.0.1:{port}", spool_dir=tmp_path / "sp")
    with pytest.raises(TLSError, match="TLS handshake .* failed"):
        store.list_experiments()
    store.close()
    sock.close()


@pytest.mark.slow
def test_tls_verify_false_is_an_explicit_opt_out_warned_about_once(tls_server, env, tmp_path,
                                                                   capsys):
    env.setenv("CAIRN_TLS_VERIFY", "false")
    url = tls_server[0]
    for _ in range(2):
        store = HttpStore(url, spool_dir=tmp_path / "sp")
        store.list_experiments()
        store.close()
    err = capsys.readouterr().err
    assert err.count("CAIRN_TLS_VERIFY is off") == 1 and url in err


@pytest.mark.slow
def test_cairn_sync_uploads_a_local_store_over_https(tls_server, pki, env, tmp_path):
    url = tls_server[0]
    local = cairn.Client(str(tmp_path / "offline"))
    exp = local.create_experiment("synced-over-tls")
    run = local.create_run(exp.id)
    local.log_metric(run.id, "acc", 0.9, step=1)
    local.set_terminated(run.id)
    close_stores("file")  # the local store's index written through before another process reads it
    cmd = [*CAIRN, "sync", "--from", str(tmp_path / "offline"), "--to", url]
    base = {**os.environ, "CAIRN_SPOOL_DIR": str(tmp_path / "spool")}

    refused = subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert f"the certificate of the Cairn server at {url} does not verify" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _server_runs(url, pki["ca"], tmp_path, "synced-over-tls") == []

    done = subprocess.run(cmd, env={**base, "CAIRN_CA_BUNDLE": str(pki["ca"])},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [got] = _server_runs(url, pki["ca"], tmp_path, "synced-over-tls")
    assert got.id == run.id and got.metrics == {"acc": 0.9}


@pytest.mark.slow
def test_the_mlflow_client_uses_the_ca_in_mlflow_tracking_server_cert_path(
        tls_server, pki, env, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    url = tls_server[0]
    env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    env.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    env.delenv("MLFLOW_TRACKING_INSECURE_TLS", raising=False)
    env.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
    with pytest.raises(MlflowException, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        mlflow.MlflowClient(url).search_experiments()
    env.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")  # the documented opt-out, warned about
    from urllib3.exceptions import InsecureRequestWarning

    with pytest.warns(InsecureRequestWarning):
        assert mlflow.MlflowClient(url).get_experiment("0").name == "Default"
    env.delenv("MLFLOW_TRACKING_INSECURE_TLS")
    env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(pki["ca"]))
    client = mlflow.MlflowClient(url)
    exp_id = client.create_experiment("mlflow-over-tls")
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.set_terminated(run.info.run_id)
    [got] = _server_runs(url, pki["ca"], tmp_path, "mlflow-over-tls")
    assert got.id == run.info.run_id and got.metrics == {"loss": 0.25}


# -- the server refuses to start without a usable certificate and key -------------------

@pytest.mark.parametrize("cert, key, message", [
    ("cert", "other_key", r"the private key --tls-key \S+other_key\.pem does not match the "
                          r"certificate --tls-cert \S+cert\.pem"),
    ("cert", None, r"--tls-cert needs --tls-key"),
    (None, "key", r"--tls-key needs --tls-cert"),
    ("cert", "missing", r"--tls-key \S+missing\.pem: no such file"),
    ("key", "key", r"--tls-cert \S+key\.pem is not a PEM certificate"),
    ("cert", "cert", r"--tls-key \S+cert\.pem is not a PEM private key"),
])
def test_bad_certificate_options_are_refused_naming_the_file(pki, tmp_path, cert, key, message):
    files = {**pki, "missing": tmp_path / "missing.pem"}
    with pytest.raises(InvalidArgument, match=message):
        checked_tls(cert and str(files[cert]), key and str(files[key]), None)


def test_an_encrypted_key_needs_its_password(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki["key"].read_bytes(), None)
    enc = tmp_path / "enc.key"
    enc.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"s3cret")))
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "bad").write_text("wrong\n")
    with pytest.raises(InvalidArgument, match="is encrypted: give its password"):
        checked_tls(str(pki["cert"]), str(enc), None)
    with pytest.raises(InvalidArgument, match="does not decrypt with the password in"):
        checked_tls(str(pki["cert"]), str(enc), str(tmp_path / "bad"))
    assert checked_tls(str(pki["cert"]), str(enc), str(tmp_path / "pw")) == {
        "ssl_certfile": str(pki["cert"]), "ssl_keyfile": str(enc),
        "ssl_keyfile_password": "s3cret"}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["server", "ui"])
def test_a_mismatched_key_stops_the_command_before_it_listens(pki, tmp_path, command):
    port = free_port()
    args = [command, "--port", str(port), "--tls-cert", str(pki["cert"]),
            "--tls-key", str(pki["other_key"])] + (["--no-browser"] if command == "ui" else [])
    done = subprocess.run([*CAIRN, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CAIRN_TRACKING_URI": str(tmp_path / "store")})
    assert done.returncode == 1
    assert "does not match the certificate" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()  # refused before the store was even opened
    with socket.socket() as s:  # nothing listens: the port is still free
        s.bind(("127.0.0.1", port))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_guides_openssl_lines_make_a_certificate_the_server_and_clients_accept(tmp_path):
    """docs/server.md's TLS example, up to `cairn server`: the files it makes load as
    --tls-cert/--tls-key, and a client trusting only its ca.pem verifies cairn.internal."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    block = guide.split("\n## TLS\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    script = block.split("\ncairn server ", 1)[0]
    assert script.count("openssl ") == 3
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    tls = checked_tls(str(tmp_path / "server.pem"), str(tmp_path / "server.key"), None)
    assert tls is not None
    # A TLS handshake in memory: the server's context from those files, the client's
    # trusting ca.pem alone (as CAIRN_CA_BUNDLE makes it), checking the name.
    from cairn.store.tls import client_context

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tls["ssl_certfile"], tls["ssl_keyfile"])
    client_ctx = client_context("https://cairn.internal:5000", str(tmp_path / "ca.pem"))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="cairn.internal")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, obj, out, peer_in in (("client", client, c_out, s_in),
                                        ("server", server, s_out, c_in)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            break
    assert all(done.values())
    assert client.getpeercert()["subject"] == ((("commonName", "cairn.internal"),),)

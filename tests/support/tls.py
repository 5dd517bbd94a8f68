"""Throw-away TLS material for the test Kafka broker, made with the openssl CLI.

Kafka 4 reads PEM keystores directly (``ssl.keystore.type=PEM``), so no Java
keystore conversion is needed: the broker gets one PEM file holding its
PKCS#8 private key followed by its certificate chain, and clients get the CA
certificate as ``ca.pem`` (librdkafka's ``ssl.ca.location``).

The server certificate names ``localhost``, ``127.0.0.1`` and ``::1`` so that
clients which verify host names (librdkafka does by default) accept it.
Everything here is for tests only: keys are unencrypted and live in the
working directory.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsFiles", "ensure_tls_material", "issue_certificate", "make_ca"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated files (all PEM)."""

    ca_pem: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    server_keystore_pem: Path  # key + cert + CA, for Kafka's PEM keystore


def _openssl(*args: str | Path, cwd: Path | None = None) -> None:
    """Run openssl quietly; surface its stderr when it fails."""
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("the openssl command is required to make TLS test certificates")
    proc = subprocess.run(
        [exe, *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{proc.stderr}")


def _new_key(path: Path) -> None:
    # genpkey writes PKCS#8 ("BEGIN PRIVATE KEY"), the form Kafka's PEM
    # keystore requires.
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    path.chmod(0o600)


def make_ca(
    directory: Path | str, name: str = "ca", common_name: str = "process-collector test CA"
) -> tuple[Path, Path]:
    """Create a self-signed CA; returns (cert_pem, key_pem).

    Exposed separately so tests can make a second, untrusted CA for
    negative cases (wrong CA must fail the handshake).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _new_key(key)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        key,
        "-out",
        cert,
        "-days",
        "3650",
        "-subj",
        f"/CN={common_name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    )
    return cert, key


def issue_certificate(
    directory: Path | str,
    name: str,
    ca_cert: Path,
    ca_key: Path,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1", "::1"),
    server: bool = True,
) -> tuple[Path, Path]:
    """Issue a leaf certificate signed by the given CA; returns (cert_pem, key_pem).

    ``server=False`` makes a client-auth certificate (for mTLS tests).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, csr, ext = (directory / f"{name}{s}" for s in (".pem", ".key", ".csr", ".ext"))
    _new_key(key)
    cn = dns_names[0] if dns_names else name
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={cn}")
    sans = [f"DNS:{d}" for d in dns_names] + [f"IP:{ip}" for ip in ip_addresses]
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}",
        "authorityKeyIdentifier=keyid",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca_cert,
        "-CAkey",
        ca_key,
        # Random serial instead of -CAcreateserial: no stray .srl file.
        "-set_serial",
        str(secrets.randbits(63)),
        "-days",
        "825",
        "-sha256",
        "-extfile",
        ext,
        "-out",
        cert,
    )
    csr.unlink(missing_ok=True)
    ext.unlink(missing_ok=True)
    return cert, key


def ensure_tls_material(directory: Path | str) -> TlsFiles:
    """Create (once) a CA and a broker certificate under ``directory``.

    Idempotent so a restarted broker keeps the same certificate and clients
    holding the old ``ca.pem`` still connect.
    """
    directory = Path(directory)
    files = TlsFiles(
        ca_pem=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        server_keystore_pem=directory / "server-keystore.pem",
    )
    if all(p.is_file() and p.stat().st_size > 0 for p in vars(files).values()):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    make_ca(directory, "ca")
    issue_certificate(directory, "server", files.ca_pem, files.ca_key)
    keystore = files.server_key.read_text() + files.server_cert.read_text() + files.ca_pem.read_text()
    tmp = files.server_keystore_pem.with_suffix(".tmp")
    tmp.write_text(keystore)
    tmp.chmod(0o600)
    tmp.replace(files.server_keystore_pem)
    return files


if __name__ == "__main__":  # pragma: no cover - manual helper
    import sys

    out = ensure_tls_material(sys.argv[1] if len(sys.argv) > 1 else "tls")
    for field, path in vars(out).items():
        print(f"{field}: {path}")

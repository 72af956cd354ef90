"""A self-signed certificate for the mail world's STARTTLS, made once per test process.

Made with the `cryptography` package when it is importable, else with `openssl` on PATH.
The key and certificate live in a temporary folder only while they are loaded.
"""

from __future__ import annotations

import datetime
import functools
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

CERT_NAME = "mx.mailworld.example"


@functools.cache
def server_context() -> ssl.SSLContext:
    """The TLS context of every STARTTLS-offering test server (built once, then shared)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    folder = Path(tempfile.mkdtemp(prefix="mailworld-tls-"))
    try:
        cert, key = folder / "cert.pem", folder / "key.pem"
        _write_self_signed(cert, key)
        context.load_cert_chain(cert, key)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return context


def _write_self_signed(cert: Path, key: Path) -> None:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        _openssl_self_signed(cert, key)
        return
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CERT_NAME)]), critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _openssl_self_signed(cert: Path, key: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            f"/CN={CERT_NAME}",
            "-addext",
            f"subjectAltName=DNS:{CERT_NAME}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

"""Throwaway certificate authorities and certificates for the TLS tests (``cryptography``)."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files, and the certificate as issued (DER)."""

    cert: Path
    key: Path
    der: bytes


class Authority:
    """A certificate authority that issues server and client certificates into a folder."""

    def __init__(self, folder: Path, name: str = "digits test CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._name = subject
        self._cert = (_builder(subject, subject, self._key.public_key())
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                      .sign(self._key, hashes.SHA256()))
        self.cert = folder / "ca.pem"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, client: bool = False, into: str | None = None) -> Issued:
        """A certificate for ``name`` (and 127.0.0.1 for servers), written to ``into``.pem
        and ``into``-key.pem (default: the name) in the folder, replacing what is there."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                            self._name, key.public_key())
                   .add_extension(x509.ExtendedKeyUsage([usage]), False))
        if not client:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        cert = builder.sign(self._key, hashes.SHA256())
        stem = into or name
        issued = Issued(self.folder / f"{stem}.pem", self.folder / f"{stem}-key.pem",
                        cert.public_bytes(serialization.Encoding.DER))
        # Written beside and renamed, as a secret manager updates a mounted file.
        for path, data in ((issued.key, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())),
                (issued.cert, cert.public_bytes(serialization.Encoding.PEM))):
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(data)
            temporary.replace(path)
        return issued


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
             ) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)))

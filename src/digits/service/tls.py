"""TLS and mutual TLS for the gRPC and HTTP ports, certificates reread when they change.

The files are looked at for every new connection (a stat each, cheap): when one has
changed, both ports present the new certificate from the next connection on, and the
running connections keep theirs. A file that cannot be read or parsed then is logged and
the previous certificate stays in use, so a half-copied file never takes a port down.
"""

import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from digits.service.settings import TlsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Certificates:
    """The PEM contents of the files, as last read."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


class CertificateStore:
    """The certificate, key and client CA files, and a version that grows on each change."""

    def __init__(self, settings: TlsSettings) -> None:
        self.cert, self.key = Path(settings.tls_cert), Path(settings.tls_key)
        self.client_ca = Path(settings.tls_client_ca) if settings.tls_client_ca else None
        self._lock = threading.Lock()  # gRPC asks from its own threads
        self._stamp: tuple[tuple[int, int, int], ...] | None = None
        self.version = 0
        check_pair(self.cert, self.key, self.client_ca)  # names the file that is wrong
        self.current = self._read()

    @property
    def files(self) -> list[Path]:
        return [self.cert, self.key, *([self.client_ca] if self.client_ca else [])]

    def refresh(self) -> None:
        """Reread the files if any changed; keep the old contents if the new ones are bad."""
        with self._lock:
            try:
                stamp = self._stamp_now()
                if stamp == self._stamp:
                    return
                check_pair(self.cert, self.key, self.client_ca)
                self.current = self._read()
            except (OSError, ValueError, ssl.SSLError) as error:
                log.error("cannot reload the TLS files (%s); keeping the certificate in use",
                          error)
                return
            self._stamp = stamp
            self.version += 1
            log.info("TLS certificate reloaded from %s", self.cert)

    def _stamp_now(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((info.st_mtime_ns, info.st_size, info.st_ino)
                     for info in (path.stat() for path in self.files))

    def _read(self) -> Certificates:
        self._stamp = self._stamp_now()
        return Certificates(self.cert.read_bytes(), self.key.read_bytes(),
                            self.client_ca.read_bytes() if self.client_ca else None)


def check_pair(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """A server SSLContext from the files; raises naming the file that is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for path in (cert, key, *([client_ca] if client_ca else [])):
        if not path.is_file():
            raise OSError(f"TLS file {path} does not exist; pass --tls-cert, --tls-key and "
                          "--tls-client-ca naming readable PEM files")
    try:
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except ssl.SSLError as error:
        raise ValueError(f"TLS files {cert}, {key}: not a PEM certificate and its key "
                         f"({error.reason or error})") from None
    return context


def grpc_credentials(store: CertificateStore) -> grpc.ServerCredentials:
    """Credentials for the gRPC port that follow the files (asked at every connection)."""
    served = {"version": store.version}

    def configuration() -> grpc.ServerCertificateConfiguration:
        current = store.current
        return grpc.ssl_server_certificate_configuration(
            [(current.key, current.cert)], root_certificates=current.client_ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        store.refresh()
        if store.version == served["version"]:
            return None  # no change
        served["version"] = store.version
        return configuration()

    return grpc.dynamic_ssl_server_credentials(
        configuration(), fetch, require_client_authentication=store.client_ca is not None)


class HttpContext:
    """The HTTP port's SSLContext, brought up to date before each new connection."""

    def __init__(self, store: CertificateStore) -> None:
        self._store = store
        self.context = check_pair(store.cert, store.key, store.client_ca)
        self.context.set_alpn_protocols(["http/1.1"])
        self._version = store.version

    def refresh(self) -> None:
        self._store.refresh()
        if self._store.version != self._version:
            # In place: the listening socket keeps this context; new handshakes use the
            # new certificate, running connections keep theirs. (A new client CA is
            # added to the ones already trusted.)
            self.context.load_cert_chain(self._store.cert, self._store.key)
            if self._store.client_ca is not None:
                self.context.load_verify_locations(self._store.client_ca)
            self._version = self._store.version

"""A throwaway certificate authority for the simulator's HTTPS origins (``trustme``).

The simulator serves its origins over HTTPS with a certificate for
``127.0.0.1``, ``::1`` and ``localhost`` issued by a CA made at start. Clients
trust it as users trust a private CA: ``SSL_CERT_FILE`` or ``network.ca_bundle``
pointing at :attr:`SimulatorCA.ca_file` (curl ``--cacert``, aria2c ``--ca-certificate``).
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import trustme

HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class SimulatorCA:
    """A CA and one server certificate, with PEM files under ``directory``."""

    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA, repr=False)

    def __post_init__(self) -> None:
        self._leaf = self.ca.issue_cert(*HOSTS)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._leaf.private_key_and_cert_chain_pem.write_to_path(str(self.server_pem))

    @classmethod
    def temporary(cls) -> SimulatorCA:
        """A CA whose files live in a fresh temporary directory."""
        return cls(Path(tempfile.mkdtemp(prefix="civitai-sim-ca-")))

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients trust."""
        return self.directory / "ca.pem"

    @property
    def server_pem(self) -> Path:
        """The server's private key and certificate chain (PEM), e.g. for nginx."""
        return self.directory / "server.pem"

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

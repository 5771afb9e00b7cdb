"""The one TLS client context, and what a certificate failure tells the user.

Verification is always on: there is no switch that turns it off. Trusted
certificates are the system's (OpenSSL's default paths, which honour
``SSL_CERT_FILE`` and ``SSL_CERT_DIR``) plus, when set, ``network.ca_bundle``: a
PEM file or a hashed certificate directory (``c_rehash``) *added* to the
system's, so a private CA (a corporate TLS-inspecting proxy, a local mirror)
can be trusted without losing the public ones.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind

HOW_TO_TRUST = (
    "if it (or a proxy in between) uses a private CA, trust that CA with "
    "`civitai-tui config set network.ca_bundle /path/to/ca.pem` or SSL_CERT_FILE; "
    "also check the system clock"
)


def client_context(
    ca_bundle: Path | None = None, source: str = "network.ca_bundle"
) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, plus ``ca_bundle`` if given.

    A bundle that does not load is a ``BAD_CONFIG`` error naming ``source``.
    """
    context = ssl.create_default_context()
    if ca_bundle is None:
        return context
    try:
        if ca_bundle.is_dir():
            context.load_verify_locations(capath=str(ca_bundle))
        else:
            context.load_verify_locations(cafile=str(ca_bundle))
    except (OSError, ValueError, ssl.SSLError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CivitaiTuiError(
            FailureKind.BAD_CONFIG,
            f"{source + ': ' if source else ''}cannot load {ca_bundle} ({reason}); "
            "give a PEM file of CA certificates or a c_rehash'ed directory",
        ) from None
    return context


def untrusted(host: str, reason: str) -> CivitaiTuiError:
    """The error for a certificate that failed verification on ``host``.

    Not retried (``BAD_CONFIG``): trying again cannot make an untrusted certificate
    trusted; the user must trust the CA or find out who is in the middle.
    """
    return CivitaiTuiError(
        FailureKind.BAD_CONFIG,
        f"the TLS certificate of {host} is not trusted ({reason}); {HOW_TO_TRUST}",
    )


def reason_of(exc: BaseException) -> str:
    """The verifier's words for a certificate error (OpenSSL's ``verify_message``)."""
    for candidate in (getattr(exc, "certificate_error", None), exc, exc.__cause__):
        message = getattr(candidate, "verify_message", None)
        if message:
            return str(message)
    return str(exc) or type(exc).__name__

"""TLS contexts and trust sources for the client; verification cannot be disabled.

Every context the client uses, built here or passed in by the caller, is
checked by `require_verifying`: a context that would accept an unverified
certificate or a wrong hostname is refused with `InvalidInputError`. There
is no escape hatch (SECURITY 38, 39; CPython's smtplib does not verify by
default, gh-91826).
"""

from __future__ import annotations

import ssl
from typing import Literal

from ._core.errors import InvalidInputError

__all__ = ["Trust", "default_context", "require_verifying", "tls_context"]

Trust = Literal["system", "certifi", "truststore"]

# RFC 8996 deprecates TLS 1.0 and 1.1; RFC 8997 asks for TLS 1.2 or better
# on submission (SECURITY 40).
_MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
_TOO_OLD = {ssl.TLSVersion.SSLv3, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1}

_default: ssl.SSLContext | None = None


def tls_context(
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
    trust: Trust | None = "system",
) -> ssl.SSLContext:
    """Build a verifying client context.

    ``trust`` picks the base trust store: the system's (``"system"``), the
    ``certifi`` bundle (``pip install trio-smtp[certifi]``), or the operating
    system's verifier through ``truststore`` (``pip install
    trio-smtp[truststore]``); ``None`` trusts only what is passed in
    ``cafile``, ``capath`` or ``cadata``, which are added to the base store
    otherwise. Certificates and hostnames are always verified, and TLS
    older than 1.2 is never negotiated.
    """
    if trust is None and cafile is None and capath is None and cadata is None:
        raise InvalidInputError("trust=None needs cafile, capath or cadata to trust anything")
    context: ssl.SSLContext
    if trust == "truststore":
        try:
            import truststore
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise InvalidInputError(
                "trust='truststore' needs the truststore package: pip install trio-smtp[truststore]"
            ) from exc
        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    elif trust == "system":
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    elif trust == "certifi":
        try:
            import certifi
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise InvalidInputError(
                "trust='certifi' needs the certifi package: pip install trio-smtp[certifi]"
            ) from exc
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certifi.where())
    elif trust is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        raise InvalidInputError(f"unknown trust source {trust!r}")
    if cafile is not None or capath is not None or cadata is not None:
        try:
            context.load_verify_locations(cafile=cafile, capath=capath, cadata=cadata)
        except (OSError, ssl.SSLError, TypeError) as exc:
            raise InvalidInputError(f"cannot load the CA certificates: {exc}") from exc
    context.minimum_version = _MINIMUM_VERSION
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return require_verifying(context)


def default_context() -> ssl.SSLContext:
    """The shared verifying context from the system trust store.

    Built once: loading the system store is the expensive part, and a
    context is safe to share between connections.
    """
    global _default
    if _default is None:
        _default = tls_context()
    return _default


def require_verifying(context: ssl.SSLContext) -> ssl.SSLContext:
    """Return ``context`` if it verifies certificates and hostnames, else refuse it."""
    if not isinstance(context, ssl.SSLContext):
        raise InvalidInputError(
            f"ssl_context must be an ssl.SSLContext, not {type(context).__name__}"
        )
    if context.verify_mode != ssl.CERT_REQUIRED:
        raise InvalidInputError(
            "the TLS context does not verify certificates (verify_mode must be CERT_REQUIRED)"
        )
    if not context.check_hostname:
        raise InvalidInputError("the TLS context does not check hostnames (check_hostname=False)")
    if context.minimum_version in _TOO_OLD:
        raise InvalidInputError(
            f"the TLS context allows {context.minimum_version.name}; TLS 1.2 is the minimum"
        )
    return context

"""The certificates every interop server presents, made by trustme for the run.

One CA issues one certificate for `SERVER_NAME`; the servers read it from
PEM files, and the client trusts that CA alone. A second, unrelated CA gives
the client a trust store that must refuse every server.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

import trio_smtp

#: The name on the servers' certificate, and the client's ``server_hostname``.
SERVER_NAME = "mail.test"


@dataclass(frozen=True)
class Certificates:
    cert_file: Path
    key_file: Path
    #: Certificate and key in one file, for servers that want them together.
    combined_file: Path
    #: Trusts only the CA that issued the servers' certificate.
    client_context: ssl.SSLContext
    #: Trusts only a CA that issued nothing the servers present.
    stranger_context: ssl.SSLContext
    #: For the in-process aiosmtpd server.
    server_context: ssl.SSLContext


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(SERVER_NAME, "localhost", "127.0.0.1")
    cert_file = directory / "server.crt"
    key_file = directory / "server.key"
    combined_file = directory / "server.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    issued.private_key_pem.write_to_path(str(key_file))
    combined_file.write_bytes(key_file.read_bytes() + cert_file.read_bytes())
    # Exim reads the key after dropping root; it is a throwaway test key.
    for path in (cert_file, key_file, combined_file):
        path.chmod(0o644)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(server_context)
    return Certificates(
        cert_file=cert_file,
        key_file=key_file,
        combined_file=combined_file,
        client_context=trio_smtp.tls_context(trust=None, cadata=ca.cert_pem.bytes().decode()),
        stranger_context=trio_smtp.tls_context(
            trust=None, cadata=trustme.CA().cert_pem.bytes().decode()
        ),
        server_context=server_context,
    )

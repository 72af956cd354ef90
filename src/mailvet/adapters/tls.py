"""Outgoing HTTPS of the adapters (Google sign-in, reCAPTCHA): one verified TLS context per
process, and the rule for which URLs may carry a secret.

Loading the CA bundle parses all of certifi's certificates (the one bundle httpx uses by
default), which is worth doing once rather than per client; a context is safe to share.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from urllib.parse import urlsplit


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The shared context (made at first use, not at import): certificates and host names
    are checked, TLS 1.2 at least."""
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def secure_url(url: str) -> bool:
    """https, or plain http to this machine (the tests' fake peers); anything else would
    send a secret or trust an answer in the clear."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""X.509 client identity from a trusted TLS front end: normalise the subject DN and find its user.

The front end (nginx, Apache, HAProxy) verifies the client certificate and forwards the subject DN in a
header (``IDDS_X509_DN_HEADER``). The header is believed only from the front end's own addresses
(``IDDS_X509_TRUSTED_PROXIES``): from anywhere else anyone could write it.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache

from django.conf import settings

from requests_app.models import X509Identity

# Grid proxies append one of these to the owner's DN ("/CN=proxy", "/CN=limited proxy", "/CN=1234567").
_PROXY_SUFFIX = re.compile(r"(/CN=(proxy|limited proxy|\d+))+$")


def normalise_dn(raw: str) -> str:
    """The owner's DN in the slash form (``/DC=ch/DC=cern/CN=Jane``), proxy suffixes removed.

    Front ends forward either the OpenSSL slash form or the RFC 2253 comma form (``CN=Jane,DC=cern,DC=ch``,
    most specific first); both become the slash form so one mapping matches either.
    """
    dn = raw.strip()
    if dn and not dn.startswith("/"):
        # RFC 2253: split on commas not escaped with a backslash, most specific part first.
        parts = [part.strip().replace("\\,", ",") for part in re.split(r"(?<!\\),", dn) if part.strip()]
        dn = "/" + "/".join(reversed(parts))
    return _PROXY_SUFFIX.sub("", dn)


@cache
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in proxies)


def is_trusted_proxy(remote_addr: str | None) -> bool:
    """Whether the connection comes from a configured TLS front end."""
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in _trusted_networks(tuple(settings.IDDS_X509_TRUSTED_PROXIES)))


def dn_from_request(meta: dict) -> str | None:
    """The client DN the front end forwarded, or None (no header, or not from a trusted front end)."""
    if not is_trusted_proxy(meta.get("REMOTE_ADDR")):
        return None
    key = "HTTP_" + settings.IDDS_X509_DN_HEADER.upper().replace("-", "_")
    raw = meta.get(key)
    return normalise_dn(raw) if raw else None


def user_for_dn(dn: str):
    """The active user mapped to ``dn``, or None."""
    identity = X509Identity.objects.select_related("user").filter(dn=dn).first()
    if identity is None or not identity.user.is_active:
        return None
    return identity.user

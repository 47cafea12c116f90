"""The bearer token check shared by the device's API and the archive's page (RFC 6750)."""

from __future__ import annotations

import hmac


def bearer_ok(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``. The scheme is case-insensitive
    (RFC 7235 §2.1: ``bearer`` is ``Bearer``); the token is compared in constant time, so a wrong
    token's answer time says nothing about how much of it was right."""
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

"""Bearer tokens and the business rules of who may delete whom.

Tokens are stateless: `<profile uuid>.<HMAC-SHA256(secret, uuid)>`. The app verifies the MAC and
then loads the profile, so a token stops working as soon as its profile is deleted. The load
generator holds the same secret and mints tokens for the profiles it seeds; no token table is
needed in the reference schema.

Rules (as the original application and its monitoring scripts enforced them):
- only ADMIN and SUPER_ADMIN may delete users; HELPDESK, VENDOR, CLIENT and DRIVER get 403
  (HELPDESK handles tickets, it does not erase accounts);
- nobody may delete themself (400, business_logic);
- a SUPER_ADMIN cannot be deleted by anyone (403, business_logic).
"""

from __future__ import annotations

import hashlib
import hmac

USER_TYPES = ("VENDOR", "CLIENT", "DRIVER", "ADMIN", "HELPDESK", "SUPER_ADMIN")
DELETER_TYPES = frozenset({"ADMIN", "SUPER_ADMIN"})
UNDELETABLE_TYPES = frozenset({"SUPER_ADMIN"})


def _mac(secret: str, profile_id: str) -> str:
    return hmac.new(secret.encode(), profile_id.encode(), hashlib.sha256).hexdigest()[:40]


def make_token(secret: str, profile_id: str) -> str:
    """The bearer token that authenticates as `profile_id`."""
    return f"{profile_id}.{_mac(secret, profile_id)}"


def token_subject(secret: str, token: str) -> str | None:
    """The profile id a well-formed, correctly signed token names; None otherwise."""
    profile_id, sep, mac = token.partition(".")
    if not sep or not profile_id or len(profile_id) > 64:
        return None
    if not hmac.compare_digest(mac, _mac(secret, profile_id)):
        return None
    return profile_id


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

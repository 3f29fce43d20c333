"""Privacy controls for person-identifying fields: keep them, replace them by a keyed hash, or drop them.

Covered fields (documented in README):
- top level: `userEmailAddress`, `userFullName`, `impersonatorEmailAddress`, `impersonatorFullName`;
- anywhere inside `logRecord` (nested objects and lists included): keys named `ipAddress`, `ip`,
  `clientIp` or `userAgent`, and keys ending in `EmailAddress`, `Email` or `FullName` (case-insensitive).
Ids (`userId`, ...) are kept: they identify Gong accounts, not people, and the joins need them.

Under `hash` and `drop`, every other string of the entry, at any depth, is also searched for e-mail
addresses and IP addresses (`find_addresses`): each one found is replaced in place, by its token
(`hash`: the same token the key rule gives the same value) or by a marker (`drop`: `[email]`, `[ip]`),
and the rest of the string is kept. Names cannot be found by pattern: only the key rule covers them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Any, Callable, Final, Optional

from gong_source.errors import GongConfigError

PII_MODES: Final = ("keep", "hash", "drop")
TOP_LEVEL_FIELDS: Final = frozenset(
    {"userEmailAddress", "userFullName", "impersonatorEmailAddress", "impersonatorFullName"}
)
RECORD_FIELD_NAMES: Final = frozenset({"ipaddress", "ip", "clientip", "useragent"})
RECORD_FIELD_SUFFIXES: Final = ("emailaddress", "email", "fullname")
MIN_SALT_LENGTH: Final = 16
EMAIL_MARKER: Final = "[email]"
IP_MARKER: Final = "[ip]"

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
ADDRESS_PATTERN: Final = re.compile(
    # An e-mail: local part with dots, + tags and the usual symbols, a dotted domain with a 2+ letter TLD.
    r"(?P<email>(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-]))"
    # IPv4: four octets 0-255, not part of a longer dotted number (1.2.3.4.5) or word.
    rf"|(?P<ipv4>(?<![\w.]){_IPV4}(?!\.?[0-9])(?![\w]))"
    # IPv6 candidate: hex groups and colons (full, compressed, IPv4-embedded), checked by `ipaddress` below.
    rf"|(?P<ipv6>(?<![\w.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_IPV4}|[0-9A-Fa-f]{{0,4}})(?![\w:]|\.[0-9]))",
)
"""What `find_addresses` matches; README "Personal data" lists the same in words."""
_QUICK_CHARS: Final = frozenset("@.:")


def replace_addresses(text: str, replacement: Callable[[str, str], str]) -> str:
    """`text` with every e-mail and IP address replaced by `replacement(kind, address)` (kind: email or ip)."""
    if not _QUICK_CHARS.intersection(text):
        return text  # most strings: no address can be inside, skip the regular expression

    def substitute(match: re.Match[str]) -> str:
        found = match.group(0)
        if match.lastgroup == "ipv6":
            try:
                ipaddress.IPv6Address(found)
            except ValueError:
                return found  # a time of day, a MAC address, "a::b" in code: not an address
        return replacement("email" if match.lastgroup == "email" else "ip", found)

    return ADDRESS_PATTERN.sub(substitute, text)


def find_addresses(text: str) -> list[str]:
    """Every e-mail and IP address in `text`, as `replace_addresses` would replace them."""
    found: list[str] = []

    def keep(_kind: str, address: str) -> str:
        found.append(address)
        return address

    replace_addresses(text, keep)
    return found


def is_record_pii(key: str) -> bool:
    """Whether a key inside `logRecord` holds person-identifying data."""
    lowered = key.lower()
    return lowered in RECORD_FIELD_NAMES or lowered.endswith(RECORD_FIELD_SUFFIXES)


class PiiPolicy:
    """Applies the configured mode to an entry, in place (after its merge key was derived)."""

    def __init__(self, mode: str, salt: Optional[str]) -> None:
        if mode not in PII_MODES:
            raise GongConfigError(f"sources.gong.pii is {mode!r}; use one of {', '.join(PII_MODES)}.")
        if mode == "hash" and len(salt or "") < MIN_SALT_LENGTH:
            raise GongConfigError(
                "sources.gong.pii = 'hash' needs a secret salt of at least "
                f"{MIN_SALT_LENGTH} characters: set sources.gong.pii_salt in .dlt/secrets.toml "
                "(env SOURCES__GONG__PII_SALT), and keep it: the same salt maps a person to the same token."
            )
        self.mode = mode
        self._key = (salt or "").encode()

    def apply(self, entry: dict[str, Any]) -> None:
        """Hash or drop the covered fields of one entry, then the addresses inside every other string."""
        if self.mode == "keep":
            return
        for key in list(entry):
            if key in TOP_LEVEL_FIELDS:
                self._replace(entry, key)
            elif key == "logRecord":
                entry[key] = self._walk(entry[key])
            else:
                entry[key] = self._scrub(entry[key])

    def _walk(self, node: Any) -> Any:
        """`node` with key-rule fields replaced and the addresses in every other string replaced."""
        if isinstance(node, list):
            return [self._walk(item) for item in node]
        if isinstance(node, dict):
            for key in list(node):
                if is_record_pii(key):
                    self._replace(node, key)
                else:
                    node[key] = self._walk(node[key])
            return node
        return self._scrub(node)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return replace_addresses(value, self._found)
        if isinstance(value, (list, dict)):
            return self._walk(value)
        return value

    def _found(self, kind: str, address: str) -> str:
        if self.mode == "drop":
            return EMAIL_MARKER if kind == "email" else IP_MARKER
        return str(self._token(address))

    def _replace(self, container: dict[str, Any], key: str) -> None:
        if self.mode == "drop":
            del container[key]
        else:
            container[key] = self._token(container[key])

    def _token(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [self._token(item) for item in value]
        return hmac.new(self._key, str(value).strip().lower().encode(), hashlib.sha256).hexdigest()

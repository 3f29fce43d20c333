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
from urllib.parse import unquote

from gong_source.errors import GongConfigError

PII_MODES: Final = ("keep", "hash", "drop")
TOP_LEVEL_FIELDS: Final = frozenset(
    {"userEmailAddress", "userFullName", "impersonatorEmailAddress", "impersonatorFullName"}
)
RECORD_FIELD_NAMES: Final = frozenset({"ipaddress", "ip", "clientip", "useragent"})
RECORD_FIELD_SUFFIXES: Final = ("emailaddress", "email", "fullname")
MIN_SALT_LENGTH: Final = 16
TOKEN_CACHE_SIZE: Final = 100_000
EMAIL_MARKER: Final = "[email]"
IP_MARKER: Final = "[ip]"

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
EMAIL_PATTERN: Final = re.compile(
    # A local part with dots, + tags and percent-escapes, `@` (or `%40` in a URL), a dotted domain with a
    # 2+ letter TLD. Guards are ASCII, so text in another script around an address does not hide it.
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+(?:@|%40)(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9])"
)
IPV4_PATTERN: Final = re.compile(
    # Four octets 0-255, not part of a longer dotted number (1.2.3.4.5) or of an ASCII word.
    rf"(?<![A-Za-z0-9.]){_IPV4}(?!\.?[0-9])(?![A-Za-z0-9])"
)
IPV6_PATTERN: Final = re.compile(
    # Hex groups and colons (full, compressed, IPv4-embedded); each candidate is checked by `ipaddress`.
    rf"(?<![A-Za-z0-9.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_IPV4}|[0-9A-Fa-f]{{0,4}})(?![A-Za-z0-9]|\.[0-9])"
)
"""What `find_addresses` matches; README "Personal data" lists the same in words."""


def replace_addresses(text: str, replacement: Callable[[str, str], str]) -> str:
    """`text` with every e-mail and IP address replaced by `replacement(kind, address)` (kind: email or ip).

    Each pattern runs only on strings holding its marker characters (most strings hold none): e-mails
    first, then IPv6 (whose embedded IPv4 stays part of it), then IPv4."""
    if "@" in text or "%40" in text:
        text = EMAIL_PATTERN.sub(lambda match: replacement("email", match.group(0)), text)
    if text.count(":") >= 2:

        def ipv6(match: re.Match[str]) -> str:
            address, rest = _ipv6_prefix(match.group(0))
            return match.group(0) if address is None else replacement("ip", address) + rest

        text = IPV6_PATTERN.sub(ipv6, text)
    if "." in text:
        text = IPV4_PATTERN.sub(lambda match: replacement("ip", match.group(0)), text)
    return text


def _ipv6_prefix(candidate: str) -> tuple[Optional[str], str]:
    """The IPv6 address that `candidate` starts with (trailing colons or groups dropped until one parses),
    and what follows it; None for a time of day, a MAC address or `a::b` in code (no decimal digit)."""
    end = len(candidate)
    while end > 2:
        address = candidate[:end]
        if any(char.isdigit() for char in address):
            try:
                ipaddress.IPv6Address(address)
                return address, candidate[end:]
            except ValueError:
                pass
        end = candidate.rfind(":", 0, end - 1) + 1 if candidate[end - 1] != ":" else end - 1
    return None, candidate


def normalize_value(value: str) -> str:
    """How a value is normalized before hashing: trimmed and lower-cased; percent-escapes of an e-mail
    decoded; an IP address in its canonical form (`2001:DB8:0::1` and `2001:db8::1` are one address)."""
    text = value.strip().lower()
    if "%40" in text:  # an e-mail found percent-encoded in a URL
        text = unquote(text)
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def find_addresses(text: str) -> list[str]:
    """Every e-mail and IP address in `text`, as `replace_addresses` would replace them (e-mails, then IPv6,
    then IPv4)."""
    found: list[str] = []

    def collect(_kind: str, address: str) -> str:
        found.append(address)
        return "\x00"  # like a token: nothing a later pattern can match

    replace_addresses(text, collect)
    return found


def is_record_pii(key: str) -> bool:
    """Whether a key inside `logRecord` holds person-identifying data."""
    lowered = key.lower()
    return lowered in RECORD_FIELD_NAMES or lowered.endswith(RECORD_FIELD_SUFFIXES)


class PiiPolicy:
    """Applies the configured mode to an entry, in place (before its merge key is derived)."""

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
        self._tokens: dict[str, str] = {}
        """Tokens of values seen (people and addresses repeat across entries): HMAC once per value."""

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
        text = str(value)
        token = self._tokens.get(text)
        if token is None:
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            token = self._tokens[text] = hmac.new(self._key, normalize_value(text).encode(), hashlib.sha256).hexdigest()
        return token

"""Privacy controls for person-identifying fields: keep them, replace them by a keyed hash, or drop them.

Covered fields (documented in docs/personal-data.md):
- top level: `userEmailAddress`, `userFullName`, `impersonatorEmailAddress`, `impersonatorFullName`;
- anywhere inside `logRecord` (nested objects and lists included): keys named `ipAddress`, `ip`, `clientIp`,
  `page_viewer_ip`, `userAgent` (the `user-agent` header) or `x-forwarded-for`, and keys ending in
  `EmailAddress`, `Email` or `FullName`. Keys are compared ignoring case, `-` and `_` (`pageViewerIp`,
  `X_Forwarded_For`, `client_ip` and `user-agent` all match), so a dlt column name matches too.
Ids (`userId`, ...) are kept: they identify Gong accounts, not people, and the joins need them.

Under `hash` a key-rule field becomes the token of its value, except `x-forwarded-for`, a chain of hops
(`client, proxy, ...`): each hop becomes the token of its address (a port dropped: `[v6]:443`, `v4:8080`) and
the tokens are joined by `, `, so the first one is the client's. Under `drop` a key-rule field is deleted.

Under `hash` and `drop`, every other string of the entry, at any depth, is also searched for e-mail
addresses and IP addresses (`find_addresses`): each one found is replaced in place, by its token
(`hash`: the same token the key rule gives the same value) or by a marker (`drop`: `[email]`, `[ip]`),
and the rest of the string is kept. A dotted quad right after `Token/`, where Token starts with an
upper-case ASCII letter, is made of ASCII letters, digits, `-`, `_` and `.`, and is not itself right after
a `/`, is a product version (`Chrome/122.0.0.0`, `Edg/122.0.0.0`) and is left alone; after a lower-case path
segment, a URL's `//` or a capitalized path segment (`/ips/10.1.2.3`, `http://10.0.0.1/`, `/Users/10.1.2.3`)
it is an address. Names cannot be found by pattern: only the key rule covers them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import string
from functools import lru_cache
from typing import Any, Callable, Final, Optional
from urllib.parse import unquote

from gong_source.errors import GongConfigError

PII_MODES: Final = ("keep", "hash", "drop")
TOP_LEVEL_FIELDS: Final = frozenset(
    {"userEmailAddress", "userFullName", "impersonatorEmailAddress", "impersonatorFullName"}
)
RECORD_FIELD_NAMES: Final = frozenset({"ipaddress", "ip", "clientip", "pageviewerip", "useragent", "xforwardedfor"})
"""Key-rule names as `record_key` writes them: lower case, without `-` and `_`."""
RECORD_FIELD_SUFFIXES: Final = ("emailaddress", "email", "fullname")
FORWARDED_FOR: Final = "xforwardedfor"
"""The key (as `record_key` writes it) whose value is a chain of hops, tokenized hop by hop under `hash`."""
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
"""What `find_addresses` matches; docs/personal-data.md lists the same in words."""
PRODUCT_TOKENS: Final = frozenset(
    {
        *("Mozilla", "AppleWebKit", "Chrome", "Chromium", "CriOS", "Safari", "Version", "Mobile", "Gecko"),
        *("Firefox", "FxiOS", "Edg", "EdgA", "EdgiOS", "Edge", "OPR", "Opera", "OPiOS", "SamsungBrowser"),
        *("YaBrowser", "Vivaldi", "Brave", "Electron", "HeadlessChrome", "Trident", "MSIE", "UCBrowser"),
        *("GongMobile", "Gong", "Zoom", "Teams", "Slack", "okhttp", "Dalvik", "CFNetwork", "Darwin"),
    }
)
"""Products whose version, written `Product/1.2.3.4` in a user agent, is not an IP address. Only these:
after any other word (`Client/203.0.113.9`, `LB/10.0.0.5`) four numbers are taken for an address."""
_PRODUCT_TOKEN_CHARS: Final = frozenset(string.ascii_letters + string.digits)
_KEY_SEPARATORS: Final = str.maketrans("", "", "-_")


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

        def ipv4(match: re.Match[str]) -> str:
            if _is_product_version(match.string, match.start()):
                return match.group(0)
            return replacement("ip", match.group(0))

        text = IPV4_PATTERN.sub(ipv4, text)
    return text


def _is_product_version(text: str, start: int) -> bool:
    """Whether the dotted quad at `start` is a product version: right after `Product/` for one of the
    `PRODUCT_TOKENS` (`Chrome/122.0.0.0`), the product not itself after a `/` (a path or a URL's host)."""
    slash = start - 1
    if slash < 1 or text[slash] != "/":
        return False
    begin = slash
    while begin > 0 and text[begin - 1] in _PRODUCT_TOKEN_CHARS:
        begin -= 1
    return text[begin:slash] in PRODUCT_TOKENS and (begin == 0 or text[begin - 1] not in "/._-")


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


@lru_cache(maxsize=4096)  # a few dozen distinct keys, met millions of times
def record_key(key: str) -> str:
    """`key` as the key rules compare it: lower case, without `-` and `_` (`X-Forwarded-For` -> `xforwardedfor`)."""
    return key.lower().translate(_KEY_SEPARATORS)


@lru_cache(maxsize=4096)
def is_record_pii(key: str) -> bool:
    """Whether a key inside `logRecord` holds person-identifying data (a raw key or a dlt column leaf name)."""
    name = record_key(key)
    return name in RECORD_FIELD_NAMES or name.endswith(RECORD_FIELD_SUFFIXES)


@lru_cache(maxsize=TOKEN_CACHE_SIZE)  # clients and proxies repeat across entries
def hop_address(hop: str) -> str:
    """The address of one `x-forwarded-for` hop, without brackets or port (`[2001:db8::5]:443` -> `2001:db8::5`,
    `10.0.4.2:8080` -> `10.0.4.2`); the trimmed hop itself when it is not an address (`unknown`)."""
    hop = hop.strip()
    if hop.startswith("["):
        end = hop.find("]")
        rest = hop[end + 1 :]
        candidate = hop[1:end] if end > 0 and (not rest or (rest[0] == ":" and rest[1:].isdigit())) else hop
    elif hop.count(":") == 1:
        candidate, _, port = hop.partition(":")
        candidate = candidate if port.isdigit() else hop
    else:
        candidate = hop
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return hop
    return candidate


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
                if self.mode == "hash" and record_key(key) == FORWARDED_FOR:
                    node[key] = self._hop_tokens(node[key])
                elif is_record_pii(key):
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

    def _hop_tokens(self, value: Any) -> Any:
        """An `x-forwarded-for` chain with each hop replaced by the token of its address, joined by `, `."""
        if isinstance(value, list):
            return [self._hop_tokens(item) for item in value]
        if not isinstance(value, str):
            return self._token(value)
        return ", ".join(self._token(hop_address(hop)) if hop.strip() else "" for hop in value.split(","))

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

"""Privacy controls for person-identifying fields: keep them, replace them by a keyed hash, or drop them.

Covered fields (documented in README):
- top level: `userEmailAddress`, `userFullName`, `impersonatorEmailAddress`, `impersonatorFullName`;
- anywhere inside `logRecord` (nested objects and lists included): keys named `ipAddress`, `ip`,
  `clientIp` or `userAgent`, and keys ending in `EmailAddress`, `Email` or `FullName` (case-insensitive).
Ids (`userId`, ...) are kept: they identify Gong accounts, not people, and the joins need them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final, Optional

from gong_source.errors import GongConfigError

PII_MODES: Final = ("keep", "hash", "drop")
TOP_LEVEL_FIELDS: Final = frozenset(
    {"userEmailAddress", "userFullName", "impersonatorEmailAddress", "impersonatorFullName"}
)
RECORD_FIELD_NAMES: Final = frozenset({"ipaddress", "ip", "clientip", "useragent"})
RECORD_FIELD_SUFFIXES: Final = ("emailaddress", "email", "fullname")
MIN_SALT_LENGTH: Final = 16


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
        """Hash or drop the covered fields of one entry."""
        if self.mode == "keep":
            return
        for field in TOP_LEVEL_FIELDS & entry.keys():
            self._replace(entry, field)
        record = entry.get("logRecord")
        if isinstance(record, (dict, list)):
            self._walk(record)

    def _walk(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item)
        elif isinstance(node, dict):
            for key in list(node):
                if is_record_pii(key):
                    self._replace(node, key)
                else:
                    self._walk(node[key])

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

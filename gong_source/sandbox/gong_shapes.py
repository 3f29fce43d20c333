"""`logRecord` shapes as real Gong tenants write them: the sandbox's default tenant.

Evidence: Gong documents nothing inside `logRecord`. The field names, nesting and types below follow
the Go structs of the open-source Gong-to-Sentinel client `w4l1dcode/gong2sentinel`
(`pkg/gong/auditing/*.go`), which look decoded from real responses. The *values* are invented: status
codes, paths, devices, table and column names of UserActivityLog, and how often each case occurs.

Each builder is a pure function of the entry's index and its random word, like the rest of the sandbox.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

CLIENT_V4 = "203.0.113.{}"
CLIENT_V6 = "2001:db8:{:x}::{:x}"
PROXY_V4 = "10.0.{}.{}"
"""Clients come from documentation ranges (IPv4 and IPv6); proxies from a private range, as behind a load
balancer. The tests find every hop in the served JSON, whatever its range."""
BROWSER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
    "Safari/537.36 Edg/122.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
    "GongMobile/5.2.1 (iPhone; iOS 17.4; Scale/3.00)",
)
ACCESS_REQUESTS = (
    # (method, requested_uri, status): most succeed; logins fail with 401, forbidden pages with 403.
    ("GET", "/home", 200),
    ("GET", "/call", 200),
    ("POST", "/ajax/login/password", 200),
    ("POST", "/ajax/login/password", 401),
    ("GET", "/settings/company/users", 403),
    ("GET", "/ajax/calls/search", 200),
    ("POST", "/ajax/library/share", 200),
    ("GET", "/oauth2/authorize", 302),
    ("GET", "/call", 404),
    ("POST", "/ajax/login/sso", 401),
)
DEVICES = ("desktop", "desktop", "mobile", "tablet")
PLAY_SPEEDS = (1.0, 1.0, 1.25, 1.5, 2.0)
SESSION_BLOCK = 5
"""Call-play entries come in blocks of 5 consecutive indices, cut in two player sessions of 1 to 4
segments each: every segment of a session shares its `video_player_instance_id`, user and call."""
SETTINGS_TABLES = (
    ("user_settings", ("user_id",)),
    ("workspace_permissions", ("workspace_id", "user_id")),
    ("call_privacy_rules", ("rule_id",)),
)
"""UserActivityLog's changed tables and their primary-key columns (one has a composite key)."""
ACTIVITY_ENDPOINTS = ("/ajax/settings/users/update", "/ajax/settings/permissions", "/ajax/settings/privacy/rules")


def call_id(rand: int) -> str:
    """One of 400 calls."""
    return f"{7_000_000_000_000_000 + (rand >> 20) % 400}"


def client_ip(rand: int) -> str:
    """The client's address: IPv4 mostly, IPv6 one time in four."""
    if rand % 4 == 0:
        return CLIENT_V6.format((rand >> 5) % 4096, (rand >> 17) % 65535 + 1)
    return CLIENT_V4.format((rand >> 5) % 250 + 1)


def forwarded_for(rand: int) -> str:
    """`x-forwarded-for`: the client first, then 0 to 2 proxies."""
    hops = [client_ip(rand)] + [PROXY_V4.format(hop + 1, (rand >> (30 + hop)) % 250 + 1) for hop in range(rand % 3)]
    return ", ".join(hops)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def access_log(index: int, rand: int, email: str, moment: datetime, late: bool) -> dict[str, Any]:
    """AccessLog: one HTTP request to Gong's web app, in snake_case with header objects."""
    method, uri, status = ACCESS_REQUESTS[(rand >> 12) % len(ACCESS_REQUESTS)]
    escaped = email.replace("@", "%40")
    query = f"?email={escaped}" if uri.startswith("/ajax/login") or rand % 7 == 0 else ""
    if uri == "/call":
        query = f"?id={call_id(rand)}"
    referer = "https://app.gong.io/home"
    if rand % 5 == 0:
        referer = f"https://app.gong.io/signin?email={escaped}&next=%2Fhome"
    headers: dict[str, Any] = {
        "referer": referer,
        "x-forwarded-for": forwarded_for(rand),
        "user-agent": BROWSER_AGENTS[(rand >> 8) % len(BROWSER_AGENTS)],
    }
    if rand % 11 == 0:
        del headers["referer"]  # a request without the header
    messages = {
        200: "Request completed",
        302: "Redirected to identity provider",
        401: f"Authentication failed for {email}",
        403: f"Access denied: {email} lacks the admin role",
        404: "Call not found",
    }
    record: dict[str, Any] = {
        "response_headers": {
            "x-traceid": f"{rand:016x}",
            "content-type": "application/json;charset=UTF-8",
            "x-iid": f"{rand >> 3:015x}",
        },
        "protocol": "HTTP/2.0" if rand % 3 else "HTTP/1.1",
        "method": method,
        "request_headers": headers,
        "elapsed_time": 5 + rand % 900,
        "requested_url": f"https://app.gong.io{uri}{query}",
        "message": messages[status],
        "mdc": {"xtid": f"{rand >> 9:012x}"},
        "content_length": 0 if method == "GET" else 64 + rand % 2000,
        "requested_uri": uri,
        "status": status,
    }
    if status == 200 and rand % 13 == 0:
        # A product version is not an address; the client's IP in the same text is.
        record["message"] = f"Unsupported browser Chrome/122.0.0.0 from {client_ip(rand)}"
    if late:
        record["mfa_method"] = ("totp", "webauthn", "sms")[(rand >> 20) % 3]
    return record


def user_activity_log(index: int, rand: int, email: str, moment: datetime, late: bool) -> dict[str, Any]:
    """UserActivityLog: a change made in Gong's settings, in camelCase, lists three levels deep."""
    table_changes: list[dict[str, Any]] = []
    for table_number in range(0 if rand % 10 == 0 else 1 + rand % 2):  # some activity changes no table
        table_name, key_columns = SETTINGS_TABLES[(rand + table_number) % len(SETTINGS_TABLES)]
        rows = []
        for row_number in range(1 + (rand >> (4 + table_number)) % 2):
            row_rand = rand >> (6 + table_number + row_number)
            columns = []
            for column_number in range(0 if row_rand % 9 == 0 else 1 + (row_rand >> 3) % 3):
                variant = (row_rand >> (5 + 3 * column_number)) % 5
                old_value: Any = [None, f"value-{index % 7}", index % 100, bool(index % 2), email][variant]
                # An UPDATE changes its value (an e-mail only in case, as a normalizing admin would).
                flipped, next_value = ("false" if index % 2 else "true"), f"value-{(index + 1) % 7}"
                new_value = [f"v{index}", next_value, str(index % 100 + 1), flipped, email.upper()][variant]
                columns.append(
                    {
                        "newValue": new_value,
                        "oldValue": old_value,
                        "operation": "INSERT" if old_value is None else "UPDATE",
                        "columnName": "notify_email" if variant == 4 else f"setting_{column_number}",
                    }
                )
            rows.append(
                {
                    "primaryKeyColumns": [
                        {"columnValue": f"{(row_rand >> key) % 10_000 + index}", "columnName": key_column}
                        for key, key_column in enumerate(key_columns)
                    ],
                    "columnChanges": columns,
                }
            )
        table_changes.append(
            {
                "preSnapshotTimestamp": _iso(moment - timedelta(seconds=1)),
                "postSnapshotTimestamp": _iso(moment),
                "rowChanges": rows,
                "tableName": table_name,
            }
        )
    endpoint = ACTIVITY_ENDPOINTS[rand % len(ACTIVITY_ENDPOINTS)]
    body: dict[str, Any] = {"settingId": index % 50, "enabled": bool(rand % 2)}
    if rand % 3 == 0:
        body["inviteEmail"] = email
    record: dict[str, Any] = {
        "tableChanges": table_changes,
        "httpRequest": {
            "referrerUri": f"https://app.gong.io/settings?user={email.replace('@', '%40')}",
            "clientIp": client_ip(rand),
            "verb": "POST",
            "endpointUri": endpoint,
            "body": json.dumps(body),
            "parameters": [],
        },
        "customData": [],
    }
    if rand % 4:  # null in Gong's sample; absent in some entries
        record["action"] = None if rand % 4 == 1 else "UPDATE_SETTINGS"
    if rand % 5:
        record["workspaceId"] = None if rand % 5 == 1 else f"{5_100_000_000_000_000_000 + rand % 1000}"
    if late:
        record["approvalTicket"] = f"CHG-{index % 10_000:04d}"
    return record


def play_session(log_type_number: int, index: int, seed_mix: Callable[..., int]) -> tuple[int, int, int]:
    """(session number, sequence number, session's random word) of call-play entry `index`."""
    block = index // SESSION_BLOCK
    block_rand = seed_mix(log_type_number, block, 2)
    cut = 1 + block_rand % (SESSION_BLOCK - 1)  # the first session has `cut` segments, the second the rest
    position = index % SESSION_BLOCK
    half = 0 if position < cut else 1
    session_rand = seed_mix(log_type_number, block, 3 + half)
    return block * 2 + half, position if half == 0 else position - cut, session_rand


def call_play(
    index: int, session: tuple[int, int, int], moment: datetime, late: bool, shared: bool
) -> dict[str, Any]:
    """UserCallPlay (and ExternallySharedCallPlay when `shared`): one playback segment of a player session.

    `start_time`/`end_time` are positions in the call in seconds. The first segment of a session that
    starts at the beginning says `0`, an integer, where the others are floats: the type varies."""
    number, sequence, session_rand = session
    # Most sessions start at the beginning of the call, others after a seek; the very first one always does.
    position = float((session_rand >> 20) % 1800) if session_rand % 3 == 0 and number else 0.0
    for earlier in range(sequence + 1):  # each segment starts where the last ended, or after a seek
        start = round(position + (30.0 if earlier and (session_rand >> earlier) % 4 == 0 else 0.0), 2)
        position = round(start + 5 + (session_rand >> (3 + 5 * earlier)) % 240 + (session_rand >> 11) % 100 / 100, 2)
    start_time: Any = 0 if start == 0 else start
    record: dict[str, Any] = {
        "call_id": call_id(session_rand),
        "video_player_instance_id": f"{session_rand:016x}-{number}",
        "sequence_num": str(sequence) if shared else sequence,
        "play_speed": PLAY_SPEEDS[(session_rand >> 7) % len(PLAY_SPEEDS)],
        "device": DEVICES[(session_rand >> 9) % len(DEVICES)],
        "start_time": start_time,
        "end_time": position,
        "event_time_on_device": _iso(moment - timedelta(milliseconds=(session_rand >> 4) % 900)),
        "offline": session_rand % 23 == 0,
        "live": False,
    }
    if shared:
        record = {"time_based_secure_sharing_id": sharing_id(session_rand), **record}
    if late:
        record["viewer_country" if shared else "captions_enabled"] = "US" if shared else bool(session_rand % 2)
    return record


def sharing_id(rand: int) -> str:
    """The id of one time-based secure share (a link with an expiry)."""
    return f"{8_800_000 + (rand >> 13) % 900}"


def externally_shared_call_access(rand: int, late: bool) -> dict[str, Any]:
    """ExternallySharedCallAccess: an external viewer opened a shared call's page."""
    record: dict[str, Any] = {
        "call_id": call_id(rand),
        "time_based_secure_sharing_id": sharing_id(rand),
        "page_viewer_ip": client_ip(rand),
    }
    if late:
        record["link_expires_at"] = "2027-01-01T00:00:00Z"
    return record

"""Schemathesis hooks for Aviso's OpenAPI document (SCHEMATHESIS_HOOKS names this module).

The document gives every subscription key `p256dh` the format `p256-point`: base64url of an
uncompressed point on P-256, which no JSON Schema pattern can say (a random 65-byte string is
almost never on the curve). This registers a generator for that format that draws real public
keys, made here with the `cryptography` package (OpenSSL), independent of Aviso's own code.

Two rules tie fields of a request together, which JSON Schema cannot say (it has no way to
compare a value with a sibling's, or to bound a sum of lengths), so the generated requests
that break them are left out (in every phase: `filter_case`):
- a trigger's `cancel_on` may not name its own `event` (the event would schedule its send and
  cancel it at once; the server answers 400 naming `cancel_on[i]`);
- a notification's whole payload must fit one push message (3993 bytes, RFC 8291 with one
  record); each field's own limit is in the schema, but their sum is not (the server answers
  400 naming `content` and how many bytes to cut). The bound here is the payload's size as
  `notify/payload.rs` lays it out, counted from above.
A recursive schema cannot bound its depth (short of writing it out once per level): a segment
filter (`Filter`, "at most 8 levels deep" in its description) nested deeper than
`notify::segment::MAX_DEPTH` is refused with 400 naming `audience.segment`, so generated filters
nested deeper are left out too.
A third is a grammar, not a relation: a content string that holds `{{` or `{%` is a Liquid
template and must compile (the server answers 400 naming the field, e.g.
`variants[2].content.title`); a schema pattern cannot say which of those strings are valid
templates, so generated contents (a notification's, its variants', a trigger's) with either
are left out. The unit tests of `notify/template/` and `notify/payload.rs` cover templates,
valid and broken (a broken one is a 400 at creation).
Nothing else is changed: every other value comes from the schema as published, and every
check runs.
"""

import base64

import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import strategies as st


def _point() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# Real points, drawn from a pool so that shrinking and replays stay deterministic per seed.
_POINTS = [_point() for _ in range(64)]

schemathesis.openapi.format("p256-point", st.sampled_from(_POINTS))


import json

# RFC 8291 with one record: 4096 bytes less the header, the padding delimiter and the tag.
MAX_PAYLOAD = 3993
# The payload's own keys and ids around the content (`web_push`, `notification`, `navigate`,
# `aviso` with the notification id, subscription id and receipt token), counted generously.
ENVELOPE = 256


def _json_len(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _payload_bound(content: dict) -> int:
    size = _json_len(content) + ENVELOPE
    # An action without its own URL opens the notification's: written again in the action.
    # Fuzzed bodies break the schema too (`actions` a number, a string): only a list is walked.
    actions = content.get("actions")
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, dict) and not action.get("url"):
            size += _json_len(content.get("url") or "/") + len('"navigate":,')
    return size


def _has_template_syntax(value, in_content=False) -> bool:
    """Whether a `content` object anywhere in `value` has a string with `{{` or `{%`."""
    if isinstance(value, str):
        return in_content and ("{{" in value or "{%" in value)
    if isinstance(value, dict):
        return any(
            _has_template_syntax(v, in_content or k == "content") for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_template_syntax(v, in_content) for v in value)
    return False


# `notify::segment::MAX_DEPTH`: the root filter is at depth 0, each `all`/`any`/`not` adds one.
MAX_SEGMENT_DEPTH = 8


def _filter_depth(value) -> int:
    """The depth of a segment filter's deepest condition (`Filter::validate_at`)."""
    if not isinstance(value, dict):
        return 0
    inner = []
    for key in ("all", "any"):
        if isinstance(value.get(key), list):
            inner.extend(value[key])
    if "not" in value:
        inner.append(value["not"])
    return 1 + max(map(_filter_depth, inner)) if inner else 0


def _has_deep_segment(value) -> bool:
    """Whether a `segment` anywhere in `value` nests deeper than the server takes."""
    if isinstance(value, dict):
        return any(
            (k == "segment" and _filter_depth(v) > MAX_SEGMENT_DEPTH) or _has_deep_segment(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_deep_segment(v) for v in value)
    return False


@schemathesis.hook
def filter_case(ctx, case):
    body = case.body
    if not isinstance(body, dict):
        return True
    cancel_on = body.get("cancel_on")
    if isinstance(cancel_on, list) and body.get("event") in cancel_on:
        return False
    if _has_template_syntax(body) or _has_deep_segment(body):
        return False
    content = body.get("content")
    if isinstance(content, dict) and _payload_bound(content) > MAX_PAYLOAD:
        return False
    return True

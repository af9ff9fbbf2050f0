"""A delivery as a Slack incoming webhook's message: {"text": ...} in Slack's mrkdwn, a run's
line linked to its page (messages.py). Slack answers 200 "ok", or 429 with Retry-After, like any
webhook: sender.post sends it, retries.py retries it."""

from __future__ import annotations

import json

from . import messages

MAX_LINES = 50  # runs listed in one Slack message (its text is cut past 40,000 characters)


def escape(text: str) -> str:
    """Slack's mrkdwn escapes these three; the rest is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(text: str, link: str) -> str:
    return f"<{link}|{escape(text)}>" if link else escape(text)


def render(body: bytes, public_url: str) -> bytes:
    message = messages.of(body, public_url)
    lines = [escape(message.intro)] if message.intro else []
    lines += [_line(text, link) for text, link in message.runs[:MAX_LINES]]
    unlisted = message.more + max(0, len(message.runs) - MAX_LINES)
    if unlisted:
        lines.append(f"... and {unlisted} more")
    return json.dumps({"text": "\n".join(lines)}, ensure_ascii=False).encode()

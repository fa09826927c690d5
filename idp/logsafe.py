"""Log lines that request values cannot forge.

Client ids, redirect URIs and error descriptions reach log messages (ours and pyop's, gunicorn's),
and a CR/LF in one would start a line of the attacker's choosing. Every record made in the process
escapes control characters in its message and in the exception text of its traceback; the
traceback keeps its own line breaks. It is a LogRecord factory rather than a handler's Formatter
so that it holds for every logger and handler (root, gunicorn's error and access logs, pytest's).
"""

from __future__ import annotations

import logging
import re
import traceback

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators some viewers break lines at.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"


def escape(text: str) -> str:
    """``text`` on one line: each control character as its escape (\\r, \\n, \\t, \\x1b, \\u2028)."""
    def one(match: re.Match[str]) -> str:
        char = match.group()
        return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
    return _CONTROL.sub(one, text)


def safe_traceback(exc: BaseException) -> str:
    """The traceback as logging prints it, with each exception's own text escaped (it may carry input)."""
    chain: list[tuple[str, str]] = []  # (the words leading to this exception, its block), last raised first
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = escape("".join(traceback.format_exception_only(type(current), current)).rstrip("\n"))
        frames = "".join(traceback.format_tb(current.__traceback__))
        block = f"Traceback (most recent call last):\n{frames}{text}" if frames else text
        if current.__cause__ is not None:
            chain.append((_CAUSE, block))
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            chain.append((_CONTEXT, block))
            current = current.__context__
        else:
            chain.append(("", block))
            current = None
    chain.reverse()  # printed first raised first, as Python does
    return chain[0][1] + "".join(link + block for link, block in chain[1:])


class SafeLogRecord(logging.LogRecord):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        exc = self.exc_info[1] if self.exc_info else None
        if exc is not None:
            # A formatter uses exc_text when set, instead of formatting the exception itself.
            self.exc_text = safe_traceback(exc)

    def getMessage(self) -> str:  # noqa: N802 - logging's name
        return escape(super().getMessage())


def install() -> None:
    """Make every later log record a SafeLogRecord (idempotent; the app and the CLI both call it)."""
    if logging.getLogRecordFactory() is not SafeLogRecord:
        logging.setLogRecordFactory(SafeLogRecord)

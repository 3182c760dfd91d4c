"""What the service's logs may hold: client errors at INFO without traceback or body, and no email address.

BentoML logs every request it refuses (a pydantic validation error, a 4xx
`BentoMLException`) at ERROR with the traceback, whose text quotes the input,
e.g. the address in a webhook event. A client's mistake is not a server
error: `ClientErrorFilter` turns those records into one INFO line ("Exception
on /decide [POST]") without `exc_info`. `RedactEmails` replaces anything that
looks like an address in any record that reaches the handlers it is installed
on (the root's and BentoML's), a safety net for every other log line. Both are
standard `logging.Filter`s, installed by `install()` once per worker.
"""
from __future__ import annotations

import logging
import re

EMAIL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
REDACTED = "<email>"
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"  # where BentoML logs refused requests


def is_client_error(exc: BaseException | None) -> bool:
    from pydantic import ValidationError

    from bentoml.exceptions import BentoMLException

    if isinstance(exc, ValidationError):
        return True
    return isinstance(exc, BentoMLException) and 400 <= int(exc.error_code) < 500


class ClientErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_client_error(record.exc_info[1]):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


class RedactEmails(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message and EMAIL_RE.search(message):
            record.msg, record.args = EMAIL_RE.sub(REDACTED, message), None
        if record.exc_info:  # the formatter prints exc_text when exc_info is gone
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, EMAIL_RE.sub(REDACTED, text)
        return True


def install() -> None:
    """Add the filters to BentoML's request logger and to every handler of the root and `bentoml` loggers."""
    logging.getLogger(BENTOML_REQUEST_LOGGER).addFilter(ClientErrorFilter())
    redact = RedactEmails()
    for name in ("", "bentoml"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactEmails) for f in handler.filters):
                handler.addFilter(redact)

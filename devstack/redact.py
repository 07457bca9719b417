"""Keys out of logs: devstack's logs are read, pasted and attached to bug reports, its keys must not be.

Query parameters that carry a credential (a function or webhook key as `code`, a SAS signature as `sig`,
tokens) are replaced wherever a URL is logged, and so is every key the process knows by value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
SECRET_PARAMETERS = re.compile(
    r"(?P<lead>[?&](?:code|sig|token|access_token|refresh_token|password|client_secret)=)[^&#\s\"']+",
    re.IGNORECASE,
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = SECRET_PARAMETERS.sub(lambda found: found.group("lead") + REDACTED, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter: the record's message (and traceback) is rendered once and redacted."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def redact_logs(secrets: Iterable[str]) -> None:
    """Redact every record the root logger's handlers write from now on."""
    kept = list(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets(kept))

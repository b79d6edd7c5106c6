"""Domain errors: each has a code, a message, an optional param, and knows its HTTP status."""

from __future__ import annotations

# code -> (HTTP status, error type) for every code of the API (docs/api.md, "Errors").
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "invalid_request_error"),
    "invalid_parameters": (400, "invalid_request_error"),
    "authentication_required": (401, "authentication_error"),
    "invalid_token": (401, "authentication_error"),
    "permission_denied": (403, "permission_error"),
    "thread_not_found": (404, "not_found_error"),
    "not_found": (404, "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "thread_exists": (409, "conflict_error"),
    "length_required": (411, "invalid_request_error"),
    "version_mismatch": (412, "precondition_failed_error"),
    "payload_too_large": (413, "invalid_request_error"),
    "unsupported_media_type": (415, "invalid_request_error"),
    "metadata_limit_exceeded": (422, "validation_error"),
    "metadata_key_invalid": (422, "validation_error"),
    "metadata_value_too_long": (422, "validation_error"),
    "variables_limit_exceeded": (422, "validation_error"),
    "variables_key_invalid": (422, "validation_error"),
    "variables_value_too_long": (422, "validation_error"),
    "tags_invalid": (422, "validation_error"),
    "title_too_long": (422, "validation_error"),
    "webhook_url_invalid": (422, "validation_error"),
    "rate_limited": (429, "rate_limit_error"),
    "service_unavailable": (503, "api_error"),
    "database_misconfigured": (503, "api_error"),
    "internal_error": (500, "api_error"),
}


class ThreadError(Exception):
    """An error a client can act on. ``code`` is one of ``ERROR_KINDS``."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        if code not in ERROR_KINDS:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message
        self.param = param

    @property
    def status(self) -> int:
        return ERROR_KINDS[self.code][0]

    @property
    def type(self) -> str:
        return ERROR_KINDS[self.code][1]

    def envelope(self) -> dict:
        error = {"type": self.type, "code": self.code, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}

    def __repr__(self) -> str:
        return f"ThreadError({self.code!r}, {self.message!r}, param={self.param!r})"


def invalid(message: str, param: str | None = None) -> ThreadError:
    return ThreadError("invalid_parameters", message, param)


def not_found() -> ThreadError:
    return ThreadError("thread_not_found", "Thread not found.")


# A prepared statement missing from the server connection a query ran on (SQLSTATE 26000), or there
# already (42P05): what a transaction-mode pooler does to prepared statements unless
# DATABASE_POOLER=transaction turns them off. A problem of the deployment, not of the request.
PREPARED_STATEMENT_SQLSTATES = frozenset({"26000", "42P05"})
POOLER_MISCONFIGURED = (
    "The database's connection pooler lends each transaction another server connection, which the "
    "service was not told: its operator must set DATABASE_POOLER=transaction."
)


def is_pooler_misconfiguration(exc: BaseException) -> bool:
    """Whether a database error is a prepared statement lost (or found twice) between server
    connections: Django's error wraps the driver's, which carries the SQLSTATE."""
    cause = exc.__cause__ or exc
    if getattr(cause, "sqlstate", None) in PREPARED_STATEMENT_SQLSTATES:
        return True
    text = str(cause)
    return "prepared statement" in text and ("does not exist" in text or "already exists" in text)

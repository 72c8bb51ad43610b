"""Domain errors, raised by services and mapped to HTTP statuses and protocol codes in one place.

    ConfideError
     ├── InvalidInput          bad_frame / 422  (input that can never succeed as sent)
     │    ├── TextTooLong      text_too_long
     │    └── EmptyText        empty_text
     ├── NotFound             not_found / 404   (also: exists, but not in your scope)
     ├── Forbidden            forbidden / 403
     ├── InvalidState         invalid_state / 409
     ├── Conflict             conflict / 409
     ├── AuthenticationFailed unauthorised / 401
     │    └── LockedOut        locked_out / 429
     └── RateLimited          rate_limited / 429

Services never raise HTTP exceptions: the transports (``confide.web``) translate these.
"""

from __future__ import annotations


class ConfideError(Exception):
    code = "internal"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()


class InvalidInput(ConfideError):
    """The input is not valid."""

    code = "bad_frame"


class TextTooLong(InvalidInput):
    """Message text is longer than 4,000 characters."""

    code = "text_too_long"


class EmptyText(InvalidInput):
    """Message text is empty."""

    code = "empty_text"


class NotFound(ConfideError):
    """Not found."""

    code = "not_found"


class Forbidden(ConfideError):
    """You are not allowed to do this."""

    code = "forbidden"


class InvalidState(ConfideError):
    """The conversation's state does not allow this."""

    code = "invalid_state"


class Conflict(ConfideError):
    """That already exists."""

    code = "conflict"


class AuthenticationFailed(ConfideError):
    """Email or password is not correct."""

    code = "unauthorised"


class LockedOut(AuthenticationFailed):
    """Too many failed sign-in attempts. Try again later."""

    code = "locked_out"


class RateLimited(ConfideError):
    """Too many requests. Slow down and retry."""

    code = "rate_limited"

    def __init__(self, message: str = "", retry_after_s: int | None = None) -> None:
        super().__init__(message)
        #: Seconds until a retry can succeed (the ``Retry-After`` header), when known.
        self.retry_after_s = retry_after_s


class ConsentRequired(InvalidState):
    """The visitor has not consented in the chat to their details going to the client."""

    code = "consent_required"

"""Named errors of the model client: each says which URL failed and how."""

from __future__ import annotations


class ModelError(RuntimeError):
    """Anything that went wrong talking to the model server."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ModelServerUnreachable(ModelError):
    """Nothing answers at the URL (connection refused, unknown host)."""


class ModelTimeout(ModelError):
    """The server took longer than the client's timeout."""


class ModelHTTPError(ModelError):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, message: str, url: str = "") -> None:
        super().__init__(f"{url} answered HTTP {status}: {message}", url)
        self.status = status
        self.server_message = message


class ModelServerNotReady(ModelHTTPError):
    """/health answered 503: the server is up but still warming up."""


class ModelProtocolError(ModelError):
    """The server's answer could not be understood: not JSON, JSON of the wrong shape, a
    broken stream, an error inside the stream, or a reply past the size bounds."""

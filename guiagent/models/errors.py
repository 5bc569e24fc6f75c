"""Named errors of the model client: each says which URL failed and how."""

from __future__ import annotations

import re


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


class ModelStreamError(ModelHTTPError, ModelProtocolError):
    """An error object inside a stream that had already begun (HTTP 200).

    SGLang sends ``data: {"error": {"object": "error", "message", "type", "param",
    "code"}}`` then ``[DONE]`` when a request it already streams is aborted (its
    serving_chat.py ``_generate_chat_stream``); ``code`` is the HTTP status the same
    failure has without streaming (503/500 for an abort, 400 for a request older versions
    validated only after the stream began). It is an HTTP error of that status, so it is
    retried (5xx) or shrunk (a 400 naming the output limit) like one, and still a
    protocol error for callers that catch those.
    """

    def __init__(self, status: int, message: str, url: str = "", *, chunks: int = 0) -> None:
        ModelError.__init__(
            self,
            f"{url} reported an error inside the stream after {chunks} chunks: {message}",
            url,
        )
        self.status = status
        self.server_message = message


# SGLang's tokenizer_manager.py (_validate_one_request) when prompt + max_new_tokens passes
# the context, whether or not --context-length was given
_SGLANG_TOTAL = re.compile(
    r"maximum context length of (\d+) tokens\. You requested a total of \d+ tokens: "
    r"(\d+) tokens from the input messages"
)


def allowed_output_tokens(message: str) -> int | None:
    """The output-token limit a server's 400 names, when it refused max_completion_tokens.

    SGLang, prompt plus output over the context: "Requested token count exceeds the
    model's maximum context length of 32768 tokens. You requested a total of 38000
    tokens: 29808 tokens from the input messages and 8192 tokens for the completion.
    ..." SGLang, output alone over ``--context-length``: "max_completion_tokens is too
    large: 8192.This model supports at most 4096 completion tokens." vLLM:
    "'max_tokens' or 'max_completion_tokens' is too large: 8192. This model's maximum
    context length is 32768 tokens and your request has 30000 input tokens (8192 > 32768
    - 30000)."
    """
    m = _SGLANG_TOTAL.search(message)
    if m:
        return int(m.group(1)) - int(m.group(2))
    if "too large" not in message or "tokens" not in message:
        return None
    m = re.search(r"\((\d+) > (\d+) - (\d+)\)", message)
    if m:
        return int(m.group(2)) - int(m.group(3))
    m = re.search(r"at most (\d+) completion tokens", message)
    if m:
        return int(m.group(1))
    return None

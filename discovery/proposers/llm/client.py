"""Talking to a model: the one-method `LLMClient` protocol and its OpenAI-compatible implementation.

    client = OpenAIClient(base_url="http://localhost:8001/v1", api_key=key, temperature=0.8,
                          max_tokens=2048)
    completion = client.complete(messages, model="qwen", json_mode="auto", timeout_s=120)

`complete` sends exactly one request and returns a `Completion` (text, token counts, latency) or
raises `LLMCallError`, classified: retryable (HTTP 408/409/429/5xx, timeouts, dropped connections,
a response that is not chat-completions JSON) or final (a refused key, an unknown model, a bad
request). It adapts to the endpoint once per model where it can: `json_mode="auto"` stops asking
for JSON output after the endpoint refuses it, and `max_tokens` becomes `max_completion_tokens`
when the endpoint asks for that (OpenAI's reasoning models); such an error comes back `adapted`.

It does not retry, wait, record or price anything (calls.py does), and it never lets the API key
into a message: error text from the endpoint is redacted before it is raised. The `openai` SDK is
built on the first call (its own retries off), so constructing a client touches no network.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import openai
from pydantic import SecretStr

from discovery.proposers.errors import LLMCallError
from discovery.proposers.llm.config import JsonMode

__all__ = ["Completion", "LLMClient", "Message", "OpenAIClient", "estimate_tokens", "redact"]

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": text}

# Local servers (vLLM, Ollama, llama.cpp) ignore the key, but the SDK insists on one.
_NO_KEY = "no-key"
_RETRYABLE_STATUS = {408, 409, 429}
_CONFIG_STATUS = {401, 402, 403, 404}  # refused key, no credit, forbidden, unknown model or path
_MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Completion:
    """A model's reply to one request."""

    text: str  # the assistant message ("" when the endpoint sent none)
    prompt_tokens: int  # as the endpoint reported, or estimated (see usage_reported)
    completion_tokens: int
    latency_s: float  # request sent to reply read
    usage_reported: bool  # False: the endpoint sent no usage and the counts are estimates


class LLMClient(Protocol):
    """Anything that answers chat messages: an HTTP endpoint, a local model."""

    endpoint: str  # where requests go, for messages and logs (a URL or a path; never a key)

    def complete(
        self, messages: Sequence[Message], *, model: str, json_mode: JsonMode, timeout_s: float
    ) -> Completion: ...


def estimate_tokens(text: str) -> int:
    """A conservative token count: 3 characters a token (BPE tokenizers average 3.5 to 4)."""
    return math.ceil(len(text) / 3)


def redact(text: str, secret: SecretStr | None) -> str:
    """`text` without the secret (a server may echo the key it was sent), cut to a short line."""
    if secret is not None and secret.get_secret_value():
        text = text.replace(secret.get_secret_value(), "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


class OpenAIClient:
    """An OpenAI-compatible chat-completions endpoint, through the `openai` SDK."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr | None,
        temperature: float,
        max_tokens: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = base_url
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.clock = clock
        self._sdk: openai.OpenAI | None = None
        self._no_json: set[str] = set()  # models whose endpoint refused JSON mode
        self._limit_param: dict[str, Literal["max_tokens", "max_completion_tokens"]] = {}

    def complete(
        self, messages: Sequence[Message], *, model: str, json_mode: JsonMode, timeout_s: float
    ) -> Completion:
        use_json = json_mode == "on" or (json_mode == "auto" and model not in self._no_json)
        limit_param = self._limit_param.get(model, "max_tokens")
        request: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "temperature": self.temperature,
            limit_param: self.max_tokens,
            "timeout": timeout_s,
        }
        if use_json:
            request["response_format"] = {"type": "json_object"}
        started = self.clock()
        try:
            response = self._client().chat.completions.create(**request)
        except openai.APIStatusError as exc:
            raise self._status_error(exc, model, json_mode, use_json, limit_param) from None
        except openai.APITimeoutError:
            raise LLMCallError(f"no reply within {timeout_s:g} s", retryable=True) from None
        except openai.APIConnectionError as exc:
            raise LLMCallError(
                f"cannot connect to {self.endpoint}: {self._clean(exc)}", retryable=True
            ) from None
        except (openai.APIError, ValueError) as exc:  # a body that is not chat-completions JSON
            raise LLMCallError(
                f"the reply is not chat-completions JSON ({self._clean(exc)}); is {self.endpoint} "
                "an OpenAI-compatible endpoint?",
                retryable=True,
            ) from None
        latency = self.clock() - started
        return self._completion(response, messages, latency)

    # -- helpers -----------------------------------------------------------------------------

    def _client(self) -> openai.OpenAI:
        if self._sdk is None:
            key = self.api_key.get_secret_value() if self.api_key is not None else _NO_KEY
            # Retries are ours (calls.py), so that each attempt is recorded and waited for.
            self._sdk = openai.OpenAI(base_url=self.endpoint, api_key=key, max_retries=0)
        return self._sdk

    def _clean(self, exc: Exception) -> str:
        return redact(str(exc) or type(exc).__name__, self.api_key)

    def _status_error(
        self,
        exc: openai.APIStatusError,
        model: str,
        json_mode: JsonMode,
        used_json: bool,
        limit_param: str,
    ) -> LLMCallError:
        status = exc.status_code
        detail = self._clean(exc)
        if status in (400, 422):
            if "max_completion_tokens" in detail and limit_param == "max_tokens":
                self._limit_param[model] = "max_completion_tokens"
                return LLMCallError(f"HTTP {status}: {detail}", retryable=True, adapted=True)
            if used_json and json_mode == "auto":
                self._no_json.add(model)  # most likely response_format; ask in the prompt only
                return LLMCallError(
                    f"HTTP {status} with JSON mode on; retrying without it: {detail}",
                    status=status,
                    retryable=True,
                    adapted=True,
                )
        retry_after = _retry_after(exc.response.headers.get("retry-after"))
        retryable = status in _RETRYABLE_STATUS or status >= 500
        hint = ""
        if status in (401, 403):
            hint = " (check LOSSFORGE_LLM_API_KEY)"
        elif status == 404:
            hint = f" (check the model name {model!r} and the base URL {self.endpoint})"
        return LLMCallError(
            f"HTTP {status}{hint}: {detail}",
            retryable=retryable,
            status=status,
            retry_after_s=retry_after,
            config=status in _CONFIG_STATUS,
        )

    def _completion(self, response: Any, messages: Sequence[Message], latency: float) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:
            raise LLMCallError("the reply has no choices", retryable=True)
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        text = text if isinstance(text, str) else ""
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            return Completion(text, max(prompt, 0), max(completion, 0), latency, True)
        # No usage (some servers omit it): estimate, so that dollars are not undercounted.
        sent = estimate_tokens(json.dumps(list(messages)))
        return Completion(text, sent, estimate_tokens(text), latency, False)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number; an HTTP date is read as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None

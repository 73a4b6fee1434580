"""Errors raised by the agent client: one class per stable protocol error kind."""

from __future__ import annotations

from typing import Any, Dict, Optional


class AgentError(Exception):
    """The agent refused a request, or the connection to it failed.

    ``kind`` is the protocol's stable error kind (``docs/agent-protocol.md``), ``rule`` the
    guard rail that refused (``withdrawal-guard:binance``, ``raw-signing``, ...) when there is
    one. The message never holds a secret, a PIN or a signature (the agent never sends them).
    """

    def __init__(self, kind: str, message: str, rule: Optional[str] = None,
                 key: Optional[str] = None, retry_after_ms: Optional[int] = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.rule = rule
        self.key = key
        self.retry_after_ms = retry_after_ms


class PolicyDenied(AgentError):
    """The key's policy refused the request (``rule`` names the rule)."""


class RateLimited(AgentError):
    """Over a rate: the agent's per-client limit or the key's policy (``retry_after_ms``)."""


class Forbidden(AgentError):
    """This uid/gid may not use this key (or this exchange with it)."""


class InvalidInput(AgentError):
    """The request cannot be signed for this exchange, or the message was malformed."""


class AgentUnavailable(AgentError):
    """The agent could not be reached, or the connection broke."""


_BY_KIND = {
    "policy_denied": PolicyDenied,
    "rate_limited": RateLimited,
    "forbidden": Forbidden,
    "invalid_input": InvalidInput,
    "bad_request": InvalidInput,
}


def from_reply(err: Dict[str, Any]) -> AgentError:
    """The exception for a reply's ``err`` object (an unknown kind is a plain AgentError)."""
    kind = str(err.get("kind", "token"))
    cls = _BY_KIND.get(kind, AgentError)
    retry = err.get("retry_after_ms")
    return cls(kind, str(err.get("message", "")), rule=err.get("rule"), key=err.get("key"),
               retry_after_ms=int(retry) if isinstance(retry, (int, float)) else None)

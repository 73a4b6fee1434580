"""Errors raised by the agent client: one class per stable protocol error kind."""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class AgentError(Exception):
    """The agent refused a request, or the connection to it failed.

    ``kind`` is the protocol's stable error kind (``docs/agent-protocol.md``), ``rule`` the
    guard rail that refused (``withdrawal-guard:binance``, ``raw-signing``, ...) when there is
    one, ``hint`` what to do about it when the agent knows. The message never holds a secret, a
    PIN or a signature (the agent never sends them).
    """

    def __init__(self, kind: str, message: str, rule: Optional[str] = None,
                 key: Optional[str] = None, retry_after_ms: Optional[int] = None,
                 hint: Optional[str] = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.rule = rule
        self.key = key
        self.retry_after_ms = retry_after_ms
        self.hint = hint


class PolicyDenied(AgentError):
    """The key's policy refused the request (``rule`` names the rule)."""


class RateLimited(AgentError):
    """Over a rate: the agent's per-client limit or the key's policy (``retry_after_ms``)."""


class Forbidden(AgentError):
    """This uid/gid may not use this key (or this exchange with it)."""


class InvalidInput(AgentError):
    """The request cannot be signed for this exchange, or the message was malformed."""


class ProtocolError(AgentError):
    """The agent could not read the message: bad frame, unsupported version or unknown op."""


class KeyNotFound(AgentError):
    """The key is allowed but missing from the token."""


class WrongKey(AgentError):
    """The key is bound to another exchange, or is of the wrong kind or algorithm."""


class KeyUnusable(AgentError):
    """The key's version is revoked, retired, expired, not yet valid, or none is active."""


class AuditFailed(AgentError):
    """The agent's audit log could not record the signature; nothing is signed until it can."""


class Busy(AgentError):
    """The agent has too many connections, or no token session was free in time: retry later."""


class TokenError(AgentError):
    """Any other token or agent failure (also the class of a kind this client does not know)."""


class AgentUnavailable(AgentError):
    """The agent could not be reached, or the connection broke."""


# Every error kind of the protocol (docs/agent-protocol.md), exactly: a Rust test
# (`agent::protocol::tests::python_errors_table_lists_every_wire_kind`) checks this table against
# the kinds the agent sends, so keep one `"kind": Class,` entry per line.
_BY_KIND: Dict[str, Type[AgentError]] = {
    "bad_frame": ProtocolError,
    "bad_request": InvalidInput,
    "unsupported_version": ProtocolError,
    "unknown_op": ProtocolError,
    "forbidden": Forbidden,
    "rate_limited": RateLimited,
    "policy_denied": PolicyDenied,
    "invalid_input": InvalidInput,
    "key_not_found": KeyNotFound,
    "wrong_exchange": WrongKey,
    "key_unusable": KeyUnusable,
    "audit_failed": AuditFailed,
    "busy": Busy,
    "token": TokenError,
}


def from_reply(err: Dict[str, Any]) -> AgentError:
    """The exception for a reply's ``err`` object (an unknown kind is a TokenError, as the
    protocol asks: "treat an unknown kind like token")."""
    kind = str(err.get("kind", "token"))
    cls = _BY_KIND.get(kind, TokenError)
    retry = err.get("retry_after_ms")
    hint = err.get("hint")
    return cls(kind, str(err.get("message", "")), rule=err.get("rule"), key=err.get("key"),
               retry_after_ms=int(retry) if isinstance(retry, (int, float)) else None,
               hint=hint if isinstance(hint, str) else None)

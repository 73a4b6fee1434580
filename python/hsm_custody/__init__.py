"""hsm-custody for Python: sign exchange requests through the hsm-custody signing agent, so the
exchange API secret stays in the PKCS#11 token and never enters the bot's process.

- :class:`AgentClient`: the agent protocol (``docs/agent-protocol.md``), standard library only.
- :mod:`hsm_custody.ccxt`: ``wrap(exchange, key=...)`` makes a ccxt exchange instance sign
  through the agent (``pip install ./python[ccxt]``).
"""

from .client import AgentClient, KeyAccess, SignedRequest
from .errors import (AgentError, AgentUnavailable, AuditFailed, Busy, Forbidden, InvalidInput,
                     KeyNotFound, KeyUnusable, PolicyDenied, ProtocolError, RateLimited,
                     TokenError, WrongKey)

__all__ = ["AgentClient", "KeyAccess", "SignedRequest", "AgentError", "AgentUnavailable",
           "AuditFailed", "Busy", "Forbidden", "InvalidInput", "KeyNotFound", "KeyUnusable",
           "PolicyDenied", "ProtocolError", "RateLimited", "TokenError", "WrongKey"]
__version__ = "0.1.0"

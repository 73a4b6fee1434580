"""Point a stock ccxt exchange at the hsm-custody gateway (``docs/gateway.md``).

>>> import ccxt
>>> from hsm_custody.gateway import ccxt_config
>>> binance = ccxt.binance({"apiKey": "...", **ccxt_config("binance", "http://127.0.0.1:8787",
...                                                       {"api.binance.com": "binance"})})

ccxt for Python 4.5.90 refuses every request once ``proxyUrl`` is set, so the bot reaches the
gateway through its base-URL form instead: every URL of the exchange's ``urls["api"]`` whose host
has a gateway route becomes ``<gateway>/<route name><path>``. The bot keeps ccxt's own signing,
with :data:`hsm_custody.ccxt.PLACEHOLDER_SECRET` as the secret; the gateway re-signs in the token.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from .ccxt import PLACEHOLDER_SECRET

__all__ = ["ccxt_config"]


def ccxt_config(exchange: Any, gateway: str, routes: Mapping[str, str]) -> Dict[str, Any]:
    """ccxt constructor settings (``urls`` and the placeholder ``secret``) that send
    ``exchange`` (a ccxt id or class) through ``gateway`` (``http://127.0.0.1:8787``) for the
    URLs in ``routes``: exchange host -> gateway route name, or host and path prefix -> route
    name for a route with a ``path_prefix`` (``{"api.mexc.com": "mexc",
    "api.mexc.com/api/v1/private": "mexc-futures"}``); the longest entry that covers a URL's
    host and path (whole segments) names its route."""
    import ccxt  # the bot's own ccxt

    instance = getattr(ccxt, exchange)() if isinstance(exchange, str) else exchange()
    base = gateway.rstrip("/")

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        if not isinstance(node, str) or not node.startswith("https://"):
            return node
        url = instance.implode_hostname(node)
        rest = url[len("https://"):]
        end = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0] or [len(rest)])
        host = rest[:end].lower()
        host = host[:-4] if host.endswith(":443") else host
        path = rest[end:].split("?", 1)[0]
        best = None
        for spec in routes:
            r_host, _, prefix = spec.partition("/")
            prefix = "/" + prefix.rstrip("/") if prefix else ""
            covers = path == prefix or path.startswith(prefix + "/") or not prefix
            if r_host.lower() == host and covers and (best is None or len(spec) > len(best)):
                best = spec
        return f"{base}/{routes[best]}{rest[end:]}" if best is not None else url

    return {"urls": {"api": rewrite(instance.urls["api"])}, "secret": PLACEHOLDER_SECRET}

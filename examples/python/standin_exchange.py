"""A loopback stand-in for Binance spot that checks signatures as Binance documents them.

It knows the API secret (it plays the exchange, which holds the other copy) and answers the few
endpoints the example bot uses: exchangeInfo, order, account, and the withdrawal endpoint, which
it records if it is ever reached (the agent must refuse the withdrawal before it is signed).

    python standin_exchange.py --port-file PORTFILE --api-key K --secret-file F
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

EXCHANGE_INFO: Dict[str, Any] = {
    "timezone": "UTC",
    "serverTime": 0,
    "rateLimits": [],
    "exchangeFilters": [],
    "symbols": [{
        "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
        "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
             "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00000",
             "stepSize": "0.00001"},
        ],
    }],
}


class Exchange:
    """The stand-in's state: the credentials it checks and what it saw."""

    def __init__(self, api_key: str, secret: bytes, recv_window_ms: int = 5000) -> None:
        self.api_key = api_key
        self.secret = secret
        self.recv_window_ms = recv_window_ms
        self.lock = threading.Lock()
        self.verified = 0
        self.rejected = 0
        self.orders = 0
        self.withdrawals = 0

    def check(self, query: str, body: str, headers: Any) -> Optional[str]:
        """None when the request is signed as Binance requires, else why not."""
        if headers.get("X-MBX-APIKEY") != self.api_key:
            return "API-key format invalid."
        total = query + body
        head, sep, signature = total.rpartition("&signature=")
        if not sep or "&" in signature:
            return "Mandatory parameter 'signature' was not sent."
        expected = hmac.new(self.secret, head.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "Signature for this request is not valid."
        params = dict(parse_qsl(head))
        try:
            ts = int(params["timestamp"])
        except (KeyError, ValueError):
            return "Mandatory parameter 'timestamp' was not sent."
        window = int(params.get("recvWindow", self.recv_window_ms))
        if abs(time.time() * 1000 - ts) > window:
            return "Timestamp for this request is outside of the recvWindow."
        return None


def make_handler(ex: Exchange) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet
            pass

        def reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def signed(self) -> Tuple[bool, Dict[str, str]]:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            problem = ex.check(parts.query, body, self.headers)
            with ex.lock:
                if problem:
                    ex.rejected += 1
                else:
                    ex.verified += 1
            if problem:
                self.reply(401, {"code": -1022, "msg": problem})
                return False, {}
            return True, dict(parse_qsl(parts.query + "&" + body))

        def route(self, method: str) -> None:
            path = urlsplit(self.path).path
            if method == "GET" and path == "/api/v3/exchangeInfo":
                info = dict(EXCHANGE_INFO, serverTime=int(time.time() * 1000))
                return self.reply(200, info)
            if method == "GET" and path == "/_standin/stats":
                with ex.lock:
                    return self.reply(200, {"verified": ex.verified, "rejected": ex.rejected,
                                            "orders": ex.orders,
                                            "withdrawals": ex.withdrawals})
            if (method, path) == ("POST", "/api/v3/order"):
                ok, p = self.signed()
                if ok:
                    with ex.lock:
                        ex.orders += 1
                        order_id = ex.orders
                    self.reply(200, {
                        "symbol": p.get("symbol"), "orderId": order_id, "orderListId": -1,
                        "clientOrderId": p.get("newClientOrderId", f"standin-{order_id}"),
                        "transactTime": int(time.time() * 1000), "price": p.get("price", "0"),
                        "origQty": p.get("quantity"), "executedQty": "0.00000000",
                        "cummulativeQuoteQty": "0.00000000", "status": "NEW",
                        "timeInForce": p.get("timeInForce", "GTC"), "type": p.get("type"),
                        "side": p.get("side"), "fills": []})
                return None
            if (method, path) == ("GET", "/api/v3/account"):
                ok, _ = self.signed()
                if ok:
                    self.reply(200, {
                        "makerCommission": 10, "takerCommission": 10, "canTrade": True,
                        "canWithdraw": True, "canDeposit": True,
                        "updateTime": int(time.time() * 1000), "accountType": "SPOT",
                        "balances": [{"asset": "BTC", "free": "0.50000000", "locked": "0"},
                                     {"asset": "USDT", "free": "1000.00", "locked": "0"}],
                        "permissions": ["SPOT"]})
                return None
            if (method, path) == ("POST", "/sapi/v1/capital/withdraw/apply"):
                ok, _ = self.signed()
                if ok:
                    with ex.lock:
                        ex.withdrawals += 1
                    self.reply(200, {"id": "standin-withdrawal"})
                return None
            return self.reply(404, {"code": -1, "msg": f"stand-in has no {method} {path}"})

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

        def do_DELETE(self) -> None:
            self.route("DELETE")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-file", required=True, help="where to write the bound port")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--secret-file", required=True,
                        help="file holding the API secret (the exchange's copy)")
    args = parser.parse_args()
    with open(args.secret_file, "rb") as f:
        secret = f.read().strip()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Exchange(args.api_key, secret)))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""An example ccxt bot whose Binance secret lives in the token, not in this process.

The only change from a stock ccxt bot is the `wrap` line (and no `secret` in the config):

    exchange = ccxt.binance({"apiKey": API_KEY, "secret": SECRET})     # before
    exchange = ccxt.binance({"apiKey": API_KEY})                       # after ...
    exchange = hsm_custody.ccxt.wrap(exchange, key="binance-main")     # ... plus this line

Every private request is built by ccxt and signed by the hsm-custody agent (socket from
$HSM_CUSTODY_AGENT_SOCKET), under the key's policy, with an audit line per signature.
`run.sh` runs it against a loopback stand-in exchange ($STANDIN_URL) that checks signatures.
"""

from __future__ import annotations

import json
import os
import sys

import ccxt

import hsm_custody
import hsm_custody.ccxt

API_KEY = os.environ["BINANCE_API_KEY"]
KEY = os.environ.get("HSM_CUSTODY_KEY", "binance-main")


def report(step: str, **fields: object) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def main() -> int:
    exchange = ccxt.binance({
        "apiKey": API_KEY,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False,
                    "fetchCurrencies": False},
    })
    standin = os.environ.get("STANDIN_URL")
    if standin:  # talk to the loopback stand-in instead of api.binance.com
        exchange.urls["api"] = {name: url.replace("https://api.binance.com", standin)
                                for name, url in exchange.urls["api"].items()}
    exchange = hsm_custody.ccxt.wrap(exchange, key=KEY)   # the one-line change

    exchange.load_markets()
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 50000)
    report("order", id=order["id"], status=order["status"], symbol=order["symbol"])
    balance = exchange.fetch_balance()
    report("balance", BTC=balance["BTC"]["free"], USDT=balance["USDT"]["free"])
    try:
        exchange.withdraw("USDT", 100, "TXexampleAddressNotReal0000000000")
        report("withdrawal", refused=False)
        return 1
    except hsm_custody.PolicyDenied as e:
        report("withdrawal", refused=True, kind=e.kind, rule=e.rule)
    # The placeholder the instance holds instead of the secret.
    report("secret_in_process", secret=exchange.secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())

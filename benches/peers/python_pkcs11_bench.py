#!/usr/bin/env python3
"""python-pkcs11 peer for the hsm-custody `sign` bench.

python-pkcs11 calls C_Initialize(NULL), which promises the module that no two threads call it
at once (SoftHSM2 then takes no locks and concurrent threads fail with CKR_GENERAL_ERROR), so
the bench runs N processes of one thread each for "N threads", aligned with --start-at.

HMAC of one message with a secret key found by label on the same token, `--threads` Python
threads (one session each; the first logs in, the others share the application's login) for
`--seconds`, then one JSON line on stdout. The PIN comes from $PEER_PIN, never from argv.
"""
import argparse
import importlib.metadata
import json
import os
import sys
import threading
import time

import pkcs11
from pkcs11 import Mechanism, ObjectClass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--module", default="/usr/lib/softhsm/libsofthsm2.so")
    ap.add_argument("--token", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--alg", default="sha256", choices=["sha256", "sha384", "sha512"])
    ap.add_argument("--msg-hex", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--start-at", type=float, default=0.0,
                    help="Unix time to start measuring at (aligns several processes)")
    args = ap.parse_args()

    mech = {
        "sha256": Mechanism.SHA256_HMAC,
        "sha384": Mechanism.SHA384_HMAC,
        "sha512": Mechanism.SHA512_HMAC,
    }[args.alg]
    msg = bytes.fromhex(args.msg_hex)
    lib = pkcs11.lib(args.module)
    # SoftHSM2 processes that start at the same moment race over the token directory and one may
    # briefly not see the token: look again a few times.
    for attempt in range(10):
        try:
            token = lib.get_token(token_label=args.token)
            break
        except (pkcs11.exceptions.NoSuchToken, pkcs11.exceptions.GeneralError):
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))
    for attempt in range(10):
        try:
            login = token.open(user_pin=os.environ["PEER_PIN"])
            break
        except pkcs11.exceptions.GeneralError:
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))
    sessions = [login] + [token.open() for _ in range(args.threads - 1)]
    keys = [s.get_key(object_class=ObjectClass.SECRET_KEY, label=args.key) for s in sessions]
    for k in keys:  # warm up
        assert len(k.sign(msg, mechanism=mech)) > 0

    stop = threading.Event()
    start = threading.Barrier(args.threads + 1)
    samples = [[] for _ in range(args.threads)]
    errors = []

    def worker(i: int) -> None:
        key, out, clock = keys[i], samples[i], time.perf_counter_ns
        start.wait()
        try:
            while not stop.is_set():
                t0 = clock()
                key.sign(msg, mechanism=mech)
                out.append(clock() - t0)
        except Exception as e:  # reported, not hidden
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    delay = args.start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    start.wait()
    t0 = time.perf_counter()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for s in sessions[1:]:
        s.close()
    login.close()
    if errors:
        print(f"python-pkcs11 peer: {errors[0]}", file=sys.stderr)
        return 1
    lat = sorted(x for s in samples for x in s)
    pct = lambda p: lat[int(p * (len(lat) - 1))] / 1000 if lat else 0.0
    print(json.dumps({
        "peer": "python-pkcs11",
        "version": importlib.metadata.version("python-pkcs11"),
        "threads": args.threads,
        "ops": len(lat),
        "secs": elapsed,
        "ops_per_s": len(lat) / elapsed,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": pct(1.0),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

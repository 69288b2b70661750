"""The check command: which credentials are found and where from (never a secret), optionally tested."""

from __future__ import annotations

import os

from ..core import credential_store
from .exits import EXIT_NO_CREDENTIALS, EXIT_OK, EXIT_SOME_FAILED, PROG
from .store import store_path


def cmd_check(args) -> int:
    from ..core import connection_check, dashscope, volc

    names = {"volc": volc.VENDOR, "dashscope": dashscope.VENDOR}
    store = store_path(args.store)
    vendors = list(credential_store.VENDORS) if args.vendor == "all" else [args.vendor]
    print(f"credential store: {store} ({'present' if store.is_file() else 'absent'})")
    configured = []
    for vendor in vendors:
        status = credential_store.credential_status(vendor, os.environ, store)
        if status["configured"]:
            configured.append(vendor)
            extra = [f"kind {status['kind']}"] if status.get("kind") else []
            extra += [f"workspace {status['workspace']}"] if status.get("workspace") else []
            print(f"{names[vendor]}: configured from {status['source']}, key {status['hint']}, "
                  f"base URL {status['base_url']}" + "".join(f", {e}" for e in extra))
        else:
            print(f"{names[vendor]}: not configured: {status['problem']}")
    if args.sandbox:
        print("testing against the built-in sandbox (offline, free):")
        tested = [(v, connection_check.run(v, "sandbox")) for v in vendors]
    elif args.test:
        if not configured:
            print(f"nothing to test: no credentials found. `{PROG} check --sandbox` tests the whole path offline.")
            return EXIT_NO_CREDENTIALS
        print("testing (free calls: nothing is processed or billed):")
        tested = [(v, connection_check.run(v, "cloud", os.environ, store)) for v in configured]
    else:
        if not configured:
            print(f"no credentials found; set them (see `{PROG} check --help`) or use --sandbox.")
            return EXIT_NO_CREDENTIALS
        return EXIT_OK
    ok = True
    for vendor, answer in tested:
        ok &= bool(answer["ok"])
        ids = f" [code {answer['code']}]" if answer.get("code") and not answer["ok"] else ""
        print(f"  {names[vendor]}: {'OK' if answer['ok'] else 'FAILED'}: {answer['message']}{ids}")
    return EXIT_OK if ok else EXIT_SOME_FAILED

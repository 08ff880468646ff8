"""`python -m service [--host H --port P] [--workers N]`: exec Gunicorn with the one serving
command (`service.server.serve.SERVE_ARGV`), whose config checks the settings. `fraudctl serve`
runs this. Anything not given comes from `Settings` (FRAUD_BIND, WEB_CONCURRENCY and their
defaults)."""

from __future__ import annotations

import argparse
import os
import sys

from service.server.serve import exec_gunicorn


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", help="with --port: sets FRAUD_BIND")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="sets WEB_CONCURRENCY")
    args = parser.parse_args()
    if (args.host is None) != (args.port is None):
        parser.error("--host and --port go together")
    if args.host is not None:
        os.environ["FRAUD_BIND"] = f"{args.host}:{args.port}"
    if args.workers is not None:
        os.environ["WEB_CONCURRENCY"] = str(args.workers)
    # Settings are checked by Gunicorn's config, in the master, before any worker starts (exit
    # 2 naming the variable): checking here too cost every start 0.35 s of imports.
    exec_gunicorn()
    return 1  # exec only returns by raising


if __name__ == "__main__":
    sys.exit(main())

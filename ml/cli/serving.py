"""`fraudctl serve`: hands over to `python -m service` (exec, not import), so `ml` never
imports the service and signals reach Gunicorn directly."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from ml.cli.output import (
    EXIT_ERROR,
    EXIT_USAGE,
    say,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="serve the production model (Gunicorn + Uvicorn workers; FRAUD_* settings)"
    )
    add_serving_options(serve)
    serve.set_defaults(handler=cmd_serve)


def serve_main(argv: list[str], epilog: str) -> int:
    """`fraudctl serve` without the whole CLI: it execs the service at once, whose own
    `Settings` validate. Building the full parser loads the training settings (pydantic-
    settings, ~150 ms), which every cold start paid: 1.02 -> 1.15 s to ready."""
    parser = argparse.ArgumentParser(
        prog="fraudctl serve",
        description="serve the production model (Gunicorn + Uvicorn workers; FRAUD_* settings)",
        epilog=f"exit status: {epilog}",
    )
    add_serving_options(parser)
    return cmd_serve(parser.parse_args(argv))


def add_serving_options(parser: argparse.ArgumentParser) -> None:
    # Locally the service listens on loopback; the container's 0.0.0.0 is Settings' default.
    parser.add_argument("--host", help=f"default: from FRAUD_BIND, else {LOCAL_HOST}")
    parser.add_argument(
        "--port", type=int, help=f"default: from FRAUD_BIND, else {LOCAL_PORT} (make run: PORT=)"
    )
    parser.add_argument(
        "--workers", type=int, help="Gunicorn workers (default: WEB_CONCURRENCY, else 2)"
    )


LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 8000


def bind_address(args: argparse.Namespace) -> tuple[str, int]:
    """--host/--port if given, else FRAUD_BIND if set, else 127.0.0.1:8000."""
    bind = os.environ.get("FRAUD_BIND", "")  # the service's setting (service/settings.py)
    if args.host is None and args.port is None and ":" in bind:
        host, _, port = bind.rpartition(":")
        if port.isdigit():
            return host, int(port)
    return args.host or LOCAL_HOST, args.port or LOCAL_PORT


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Replace this process with `python -m service`, which execs Gunicorn: signals (SIGTERM)
    then reach Gunicorn directly. A port already taken is said here, naming the setting."""
    host, port = bind_address(args)
    if port_in_use(host, port):
        say(
            f"fraudctl: port {port} on {host} is in use: choose another with PORT={port + 1} "
            f"(make run), --port {port + 1}, or FRAUD_BIND={host}:{port + 1}"
        )
        return EXIT_USAGE
    url = f"http://{host}:{port}"
    if os.environ.get("FRAUD_LOG_FORMAT", "json") == "json":  # the service's, and its default
        say(json.dumps({"event": "serving", "url": url, "docs": f"{url}/docs"}))  # one stream
    else:
        say(f"serving on {url} (docs: {url}/docs)")
    argv = [sys.executable, "-m", "service", "--host", host, "--port", str(port)]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    os.execv(sys.executable, argv)  # noqa: S606 - no shell involved
    return EXIT_ERROR  # exec only returns by raising

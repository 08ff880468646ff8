"""`fraudctl keys generate`, `sign` and `migrate`: the keys and signatures bundles carry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.options import add_store, existing_store
from ml.cli.output import EXIT_OK, print_json, say

if TYPE_CHECKING:
    from ml.settings import TrainingSettings


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    keys = commands.add_parser("keys", help="signing keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate", help="write signing.pem and signing.pub; print the public key's base64"
    )
    generate.add_argument("--out", type=Path, required=True, help="directory for the pair")
    generate.set_defaults(handler=cmd_keys_generate)

    sign = commands.add_parser(
        "sign", help="sign a version in a store with the current key (FRAUD_SIGNING_KEY_FILE)"
    )
    add_store(sign, settings)
    sign.add_argument("--version", required=True, help="the version to sign")
    sign.set_defaults(handler=cmd_sign)

    migrate = commands.add_parser(
        "migrate",
        help="convert bundles made before signed, pickle-free bundles and sign every version",
    )
    add_store(migrate, settings)
    migrate.set_defaults(handler=cmd_migrate)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from ml.signing import generate_keys

    private, public, raw = generate_keys(args.out)
    say(f"wrote {private} (keep it secret: FRAUD_SIGNING_KEY_FILE) and {public}")
    say("the service trusts it with FRAUD_TRUSTED_KEYS set to the line below, or to the .pub path")
    print(raw)
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from ml.signing import sign_version, signing_key_from_env

    kid = sign_version(existing_store(args.store), args.version, signing_key_from_env())
    say(f"signed {args.version} with key {kid}")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from ml.migrate import migrate_store
    from ml.signing import signing_key_from_env

    report = migrate_store(existing_store(args.store), signing_key_from_env(), progress=say)
    print_json(
        {
            "converted": report.converted,
            "signed": report.signed,
            "pointer_moved": report.pointer_moved,
        }
    )
    return EXIT_OK

"""The one way a command registers its sub-parser (help, description, examples epilog)."""

from __future__ import annotations

import argparse


def command_parser(sub, name: str, help: str, epilog: str, description: str | None = None):
    """`sub.add_parser` with the help text doubling as description and raw-formatted examples."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

"""What every `chainnode` command shares: the key password, output (text or one JSON
document), and turning expected failures into one-line messages (exit status 1)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

PASSWORD_ENV = "CHAINNODE_PASSWORD"


def read_password(password_file: str | None, *, confirm: bool) -> str:
    """The key password, from --password-file, $CHAINNODE_PASSWORD, or a prompt on a terminal."""
    if password_file:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read password file {password_file}: {exc.strerror}") from None
        password = text.rstrip("\r\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = click.prompt("Key password", hide_input=True, confirmation_prompt=confirm)
    else:
        raise click.ClickException(f"no password given: pass --password-file FILE or set {PASSWORD_ENV}")
    if not password:
        raise click.ClickException("the password is empty; choose a non-empty password")
    return password


def emit(as_json: bool, data: Any, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in lines:
            click.echo(line)

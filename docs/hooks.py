"""MkDocs hooks: the pages generated from the code, so they cannot drift from it.

A page says where generated text goes with an HTML comment on a line of its own:

- ``<!-- generated:cli -->``: every ``solidstack`` command, its usage, help and options (from click);
- ``<!-- generated:config module:Class -->``: a table of a config dataclass's fields and defaults;
- ``<!-- generated:decisions -->``: the decision records, linked, with their titles;
- ``<!-- generated:file PATH -->``: a file of the repository (CHANGELOG.md, benchmarks/README.md) without its
  first heading.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated:(\w+)\s*(.*?)\s*-->$", re.MULTILINE)


def _cli() -> str:
    from solidstack.cli import main

    out: list[str] = []

    def walk(command: click.Command, path: list[str]) -> None:
        ctx = click.Context(command, info_name=" ".join(path))
        out.append(f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`\n")
        out.append(f"```text\n{command.get_help(ctx)}\n```\n")
        if isinstance(command, click.Group):
            for name in sorted(command.list_commands(ctx)):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name])

    walk(main, ["solidstack"])
    return "\n".join(out)


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    return f"`{value!r}`"


def _config(target: str) -> str:
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    rows = ["| field | type | default |", "|---|---|---|"]
    for field in dataclasses.fields(cls):
        if field.name == "file":
            continue
        kind = str(field.type).replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{kind}` | {_default(field).replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"


def _decisions() -> str:
    lines = []
    for path in sorted((ROOT / "docs" / "decisions").glob("[0-9]*.md")):
        title = path.read_text().splitlines()[0].lstrip("# ").strip()
        lines.append(f"- [{title}]({path.name})")
    return "\n".join(lines) + "\n"


def _file(relative: str) -> str:
    text = (ROOT / relative).read_text()
    return text.split("\n", 1)[1] if text.startswith("# ") else text


def on_page_markdown(markdown: str, **_: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind == "cli":
            return _cli()
        if kind == "config":
            return _config(argument)
        if kind == "decisions":
            return _decisions()
        if kind == "file":
            return _file(argument)
        raise ValueError(f"unknown generated block {kind!r}")

    return MARKER.sub(replace, markdown)

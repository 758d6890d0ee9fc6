"""The documentation's reference pages are what the code says, and the site builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async.cli import reference
from mzbuild_async.cli.main import EXIT_STATUSES
from mzbuild_async.cli.parser import build_parser
from mzbuild_async.workflow.config import TABLES

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("name", sorted(reference.PAGES))
def test_reference_pages_are_generated_from_the_code(name: str) -> None:
    """Edit the parser or the settings, then run `python -m mzbuild_async.cli.reference
    docs/reference`: a committed page that differs fails here."""
    committed = (DOCS / "reference" / name).read_text()
    assert committed == reference.PAGES[name](), f"docs/reference/{name} is stale"


def test_every_command_flag_table_key_and_status_is_documented() -> None:
    """The generated pages name every flag of every command, every settings key and
    every exit status (the generator cannot silently skip one)."""
    commands = reference.commands_markdown()
    subcommands = reference._subcommands(build_parser())
    assert len(subcommands) >= 14
    for name, sub in subcommands.items():
        assert f"## {name}\n" in commands
        for flag in sub._actions:
            for option in flag.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in commands, (name, option)
    configuration = reference.configuration_markdown()
    for table in TABLES.values():
        assert f"`{table.header}`" in configuration
        for key in table.keys:
            assert f"| `{key}` |" in configuration
    statuses = reference.exit_statuses_markdown()
    for status in EXIT_STATUSES:
        assert f"| {status} |" in statuses


def test_the_reader_accepts_exactly_the_documented_keys(tmp_path: Path) -> None:
    """A documented key is accepted; one more is an error naming the file."""
    from mzbuild_async.errors import UsageError
    from mzbuild_async.workflow.config import load_config

    (tmp_path / "mzbuild-async.toml").write_text('[lookup]\ntiers = ["disk"]\nretries = 2\n')
    assert load_config(tmp_path).registry.retries == 2
    (tmp_path / "mzbuild-async.toml").write_text("[lookup]\ntiers = []\nnot-a-key = 1\n")
    with pytest.raises(UsageError, match=r"mzbuild-async\.toml: \[lookup\]: unknown setting"):
        load_config(tmp_path)
    (tmp_path / "mzbuild-async.toml").write_text("[engines]\n")
    with pytest.raises(UsageError, match="unknown setting 'engines'"):
        load_config(tmp_path)

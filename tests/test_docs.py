"""Docs that cannot drift: every command has help and a README section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMANDS = sorted(name for name, app in get_commands().items() if app == "dbtools")


def test_dbtools_has_its_four_commands():
    assert COMMANDS == ["backupdb", "listbackups", "restoredb", "safemigrate"]


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_and_a_readme_section(name):
    command = load_command_class("dbtools", name)
    assert len(command.help) > 40
    assert re.search(rf"^## {name}$", README, re.MULTILINE)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_the_readme(name):
    parser = load_command_class("dbtools", name).create_parser("manage.py", name)
    own = [action.option_strings[0] for action in parser._actions if action.option_strings]
    django_common = {"-h", "--version", "-v", "--settings", "--pythonpath", "--traceback", "--no-color",
                     "--force-color", "--skip-checks"}  # fmt: skip
    for option in own:
        if option not in django_common:
            assert f"`{option}" in README, f"{name} {option} is not documented"


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "python3 dev.py demo",
        "",
        "python3 dev.py test",
    ]

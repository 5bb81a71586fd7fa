"""Docs that cannot drift: every command has help, a section in the reference
(docs/commands.md) and one in the README, every option and setting is
documented, and every link between the docs leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

from dbtools.conf import KNOWN_KEYS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMANDS_DOC = (ROOT / "docs" / "commands.md").read_text()
COMMANDS = sorted(name for name, app in get_commands().items() if app == "dbtools")
MARKDOWN = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])


def section(text: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = re.search(rf"^{re.escape(heading)}$", text, re.MULTILINE)
    assert start, f"no {heading!r}"
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, start.end())
    return text[start.end() : end.start() if end else len(text)]


def test_dbtools_has_its_five_commands():
    assert COMMANDS == ["backupdb", "diffdb", "listbackups", "restoredb", "safemigrate"]


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_a_reference_section_and_a_readme_section(name):
    command = load_command_class("dbtools", name)
    assert len(command.help) > 40
    assert re.search(rf"^## {name}$", COMMANDS_DOC, re.MULTILINE)
    assert re.search(rf"^### {name}$", README, re.MULTILINE)
    assert f"(docs/commands.md#{name})" in section(README, f"### {name}")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_its_commands_reference_section(name):
    parser = load_command_class("dbtools", name).create_parser("manage.py", name)
    own = [action.option_strings[0] for action in parser._actions if action.option_strings]
    django_common = {"-h", "--version", "-v", "--settings", "--pythonpath", "--traceback", "--no-color",
                     "--force-color", "--skip-checks"}  # fmt: skip
    reference = section(COMMANDS_DOC, f"## {name}")
    for option in own:
        if option not in django_common:
            assert f"`{option}" in reference, f"{name} {option} is not in docs/commands.md"


def test_every_setting_is_in_the_readme_settings():
    settings_section = section(README, "## Settings")
    for key in KNOWN_KEYS:
        assert f'"{key}":' in settings_section, f"DBTOOLS['{key}'] is not in the README's Settings"


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "python3 dev.py demo",
        "",
        "python3 dev.py test",
    ]


def test_the_readme_is_read_in_ten_minutes():
    assert len(README.splitlines()) < 350


def test_the_docs_index_links_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    for page in sorted((ROOT / "docs").iterdir()):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (outside code blocks)."""
    found: set[str] = set()
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#+ (.+)$", outside_code, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page):
    text = page.read_text()
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", outside_code):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name} links {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file.read_text()), (
                f"{page.name} links {target}: no such heading"
            )

"""System checks: problems in the project's setup that dbtools can see early."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import get_settings, settings_problems
from .exceptions import ConfigurationError

# backupdb runs only these: see its requires_system_checks.
TAG = "dbtools"


@register(TAG)
def check_safemigrate_name_clash(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """django-safemigrate also has a `safemigrate` command; Django runs the one
    of whichever app comes first in INSTALLED_APPS."""
    labels = [config.label for config in apps.get_app_configs()]
    if "django_safemigrate" not in labels or "dbtools" not in labels:
        return []
    first = labels.index("dbtools") < labels.index("django_safemigrate")
    winner = "dbtools" if first else "django_safemigrate"
    return [
        Warning(
            f"Both dbtools and django_safemigrate provide a 'safemigrate' command; {winner}'s runs, because it "
            f"comes first in INSTALLED_APPS.",
            hint="Order INSTALLED_APPS so the one you mean comes first, or uninstall the other.",
            id="dbtools.W001",
        )
    ]


@register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Each problem in DBTOOLS on its own line, then labels in EXCLUDE that name nothing."""
    problems = settings_problems()
    messages: list[CheckMessage] = [
        Error(problem, hint="See the README's Settings section.", id="dbtools.E001")
        for problem in problems
    ]
    if problems:
        return messages
    from .graph import label_problem

    try:
        exclude = get_settings().exclude
    except ConfigurationError:  # pragma: no cover - problems were reported above
        return messages
    from .storage import backup_location

    try:
        backup_location()  # DBTOOLS['STORAGE'] names a storage dbtools can publish to
    except ConfigurationError as exc:
        messages.append(
            Error(str(exc), hint="See the README's Storing backups elsewhere.", id="dbtools.E003")
        )
    for label in exclude:
        problem = label_problem(label, list(apps.get_models(include_auto_created=True)))
        if problem:
            messages.append(
                Error(
                    f"DBTOOLS['EXCLUDE']: {problem}",
                    hint="See the README's Settings section.",
                    id="dbtools.E002",
                )
            )
    return messages


# Not tagged: a bad MASK is reported by `manage.py check` but does not stop
# plain backups, restores or migrations, which never read it.
@register()
def check_mask(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Each problem with the masking rules and their key, on its own line."""
    from .masking import mask_problems

    return [
        Error(message, hint="See docs/masking.md.", id=check_id)
        for check_id, message in mask_problems()
    ]

from django.apps import AppConfig


class ReplayLabConfig(AppConfig):
    """The reference document's 'complex transformation': free text parsed by a
    data migration into two fields, then the text column dropped."""

    name = "tests.replaylab"
    label = "replaylab"

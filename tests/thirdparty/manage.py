#!/usr/bin/env python
"""manage.py of the Wagtail lab project (see tests/test_thirdparty_wagtail.py)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wagtaillab.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

#!/usr/bin/env python
"""Django's command-line utility."""

from __future__ import annotations

import os
import sys

from django.core.management import execute_from_command_line


def main() -> None:
    # Settings load lazily, on the first command that needs them: setting the module here is in time.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

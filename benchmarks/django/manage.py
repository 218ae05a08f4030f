#!/usr/bin/env python
"""manage.py of the comparison's project (benchproject); compare.py runs it."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)

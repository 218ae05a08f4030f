"""Loaded by bin/jobs and the web app before anything runs: it imports the app's models and job classes."""

import app.jobs
import app.models  # noqa: F401

"""Loaded by bin/jobs (and your web app) before anything runs: import your job classes here.

solidstack runs only job classes that are imported, so every module that defines jobs belongs below.
"""

# from app.jobs import *

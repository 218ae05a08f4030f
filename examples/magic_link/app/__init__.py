"""The magic-link sign-in app: models, jobs and (later) the web app."""

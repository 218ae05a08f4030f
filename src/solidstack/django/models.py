"""No models: solidstack's tables come from its own migrations (run by ``manage.py migrate``, see apps.py).

The module exists because Django sends ``post_migrate`` only to apps that have one.
"""

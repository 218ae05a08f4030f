"""``solidstack dashboard``: serve the dashboard alone, for the current app's queue database."""

from __future__ import annotations

import ipaddress
import socket

import click

from ..config import App

DEFAULT_PORT = 8100


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) resolves only to loopback addresses."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--no-auth", is_flag=True,
              help="Serve without authentication (refused unless --host is a loopback address).")
@click.option("--require", help="Module or .py file to import instead of config/environment.py (job classes).")
@click.option("--log-level", default="info", show_default=True)
@click.pass_obj
def dashboard(app: App, host: str, port: int, no_auth: bool, require: str | None, log_level: str) -> None:
    """Serve the jobs dashboard at http://HOST:PORT/ (access: SOLIDSTACK_DASHBOARD_USERNAME/_PASSWORD)."""
    import uvicorn

    from solidstack.queue.cli import load_app_code

    from .access import PASSWORD_VAR, USERNAME_VAR, Access
    from .app import dashboard_app

    if no_auth and not is_loopback(host):
        raise click.UsageError(f"--no-auth serves the dashboard to anyone who can reach {host}: it is allowed on a "
                               f"loopback address only. Set {USERNAME_VAR} and {PASSWORD_VAR} instead.")
    load_app_code(app, require)  # job classes: positional secrets are redacted by parameter name, tasks run now
    if no_auth:
        click.secho("warning: the dashboard is open without authentication (--no-auth), on a loopback address",
                    fg="yellow", err=True)
    elif not Access().configured:
        click.secho(f"note: no access is configured, every page will answer 403: set {USERNAME_VAR} and "
                    f"{PASSWORD_VAR}, or use --no-auth on a loopback address", fg="yellow", err=True)
    asgi = dashboard_app(allow_unauthenticated=no_auth, title=app.root.name or "solidstack")
    click.echo(f"solidstack dashboard for {app.root} ({app.env}) at http://{host}:{port}/")
    uvicorn.run(asgi, host=host, port=port, log_level=log_level)

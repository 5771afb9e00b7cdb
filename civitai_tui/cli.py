"""The ``civitai-tui`` command line: one entry point for every command.

Exit status (DESIGN.md): 0 when every file is complete and verified, 1 when some
failed, 2 for bad usage.
"""

from __future__ import annotations

import click

from civitai_tui import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="civitai-tui")
def main() -> None:
    """A terminal download manager for CivitAI models."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, help="API origin port.")
@click.option(
    "--storage-port", default=0, help="Storage origin port (default: a free one)."
)
@click.option("--seed", default=1, show_default=True, help="Catalogue seed.")
def simulator(host: str, port: int, storage_port: int, seed: int) -> None:
    """Run the CivitAI simulator alone (API origin + storage origin)."""
    from civitai_tui.simulator.server import serve_forever

    serve_forever(host=host, api_port=port, storage_port=storage_port, seed=seed)

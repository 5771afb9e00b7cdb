"""The ``civitai-tui`` command line: one entry point for every command.

Exit status (README): 0 when every file is complete and verified, 1 when some
failed, 2 for bad usage (unknown options, unparsable targets, bad config).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from civitai_tui import __version__
from civitai_tui.analytics.commands import report
from civitai_tui.bulk.jobs import JobOptions, resolve_dest
from civitai_tui.civitai.targets import Target, expand_target_args, parse_target
from civitai_tui.civitai.vocabulary import MODEL_TYPES, PERIODS, SORTS, canonical
from civitai_tui.config import OPTIONS, Config, Environment, state_dir
from civitai_tui.config import option as config_option
from civitai_tui.credentials import load_token
from civitai_tui.download.speed import parse_speed
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.display import printable, rich_text
from civitai_tui.units import format_speed

if TYPE_CHECKING:
    from civitai_tui.oneshot import GetOptions

T = TypeVar("T")
#: ``get`` stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: ``get`` planned no file at all (a search or filter that matched nothing).
EXIT_NOTHING = 3
err_console = Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 1) -> None:
    err_console.print(Text.assemble(("error:", "red"), " ", rich_text(message)))
    raise SystemExit(code)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; our errors become a message and exit status (2 for bad usage)."""
    try:
        return asyncio.run(coro)
    except CivitaiTuiError as err:
        usage = err.kind in (FailureKind.BAD_TARGET, FailureKind.BAD_CONFIG)
        _fail(err.message, 2 if usage else 1)
    raise AssertionError("unreachable")


def _config() -> Config:
    try:
        return Config.load()
    except CivitaiTuiError as err:
        _fail(err.message, 2)
    raise AssertionError("unreachable")


def _targets(raw: tuple[str, ...], base_url: str) -> list[Target]:
    try:
        return [parse_target(t, base_url) for t in expand_target_args(raw)]
    except CivitaiTuiError as err:
        raise click.UsageError(err.message) from None


class SpeedType(click.ParamType):
    """A speed such as ``20MB``, ``512KiB`` or ``0`` (no limit), in bytes/s."""

    name = "speed"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_speed(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SPEED = SpeedType()


def bulk_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The filters of bulk targets (``user:``, ``tag:``, ``search:``) and file selection."""
    options = [
        click.option(
            "--types", multiple=True, help="Model types, e.g. LORA (repeatable, any case)."
        ),
        click.option("--base-model", "base_models", multiple=True, help="e.g. 'SDXL 1.0'."),
        click.option("--sort", help=f"One of: {', '.join(SORTS)} (any case)."),
        click.option("--period", help=f"One of: {', '.join(PERIODS)} (any case)."),
        click.option("--nsfw/--no-nsfw", default=None, help="Include NSFW models."),
        click.option("--limit", type=click.IntRange(1), help="Bulk targets: at most N models."),
        click.option("--all-versions", is_flag=True, help="Every version, not only the latest."),
        click.option(
            "--all-files", is_flag=True, help="Every file of a version, not only the primary."
        ),
        click.option("--format", "formats", multiple=True, help="File format, e.g. SafeTensor."),
        click.option(
            "--max-speed",
            type=SPEED,
            help="Speed limit, e.g. 20MB or 512KiB (`add`: this job's own, changeable "
            "with `max-speed`; `get`: the whole run's, else download.max_speed).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, prog_name="civitai-tui")
@click.option(
    "--embedded", is_flag=True, help="Run the engine inside the UI process (stops with it)."
)
@click.option("--allow-http", is_flag=True, help="Allow plain http:// to non-loopback hosts.")
@click.pass_context
def main(ctx: click.Context, embedded: bool, allow_http: bool) -> None:
    """A terminal download manager for CivitAI models.

    With no command, opens the full-screen UI attached to the engine (started in
    the background when none runs, so downloads survive a dropped SSH session).
    """
    if ctx.invoked_subcommand is not None:
        return
    _need_terminal()
    _run(_open_tui(state_dir(), embedded=embedded, allow_http=allow_http))


def _need_terminal() -> None:
    """Exit 2 with a clear line when the UI would have no terminal to draw on."""
    from civitai_tui.tui.terminal import NO_TERMINAL, has_terminal

    if not has_terminal():
        _fail(NO_TERMINAL, 2)


async def _open_tui(home: Path, *, embedded: bool, allow_http: bool) -> None:
    """The UI on this state dir's engine: started in the background, or embedded."""
    from civitai_tui.engine.process import EnginePaths, engine_answers, ensure_engine
    from civitai_tui.tui.app import engine_keeps_running, run_tui_async
    from civitai_tui.tui.terminal import has_terminal

    if not embedded:
        app = await run_tui_async(await ensure_engine(home, allow_http=allow_http), home)
        if app.return_code in (None, 0) and app.state.connected and has_terminal():
            err_console.print(engine_keeps_running(app.state), markup=False)
        return
    from civitai_tui.engine.core import Engine
    from civitai_tui.tui.embedded import run_embedded_async

    if await engine_answers(EnginePaths(home)):
        raise CivitaiTuiError(
            FailureKind.ENGINE,
            f"an engine already runs for {home}; open the UI without --embedded to attach to it",
        )
    await run_embedded_async(lambda: Engine(home, allow_http=allow_http))


# --------------------------------------------------------------------------- get


@main.command()
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--dest",
    "-d",
    type=click.Path(file_okay=False, path_type=Path),
    help="Destination folder (default: bulk.dest from the config, else the current folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object to stdout.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (files, sizes, paths, what is present, free space after); "
    "download nothing.",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 64),
    help="Connections per file, fixed (default: the performance optimizer chooses).",
)
@click.option("--max-files", type=click.IntRange(1, 64), help="Files downloading at once.")
@click.option("--allow-http", is_flag=True, help="Allow plain http:// to non-loopback hosts.")
@bulk_options
def get(
    targets: tuple[str, ...],
    dest: Path | None,
    as_json: bool,
    connections: int | None,
    max_files: int | None,
    allow_http: bool,
    dry_run: bool,
    **bulk: Any,
) -> None:
    """Download TARGETs now, without the queue, with progress bars.

    TARGET is a civitai.com model or version URL, model:ID, version:ID,
    hash:SHA256, an http(s):// file URL, user:NAME, tag:NAME, search:"query",
    or @FILE with one target a line.
    """
    from civitai_tui.console import ProgressDisplay
    from civitai_tui.events import EventBus
    from civitai_tui.oneshot import run_get
    from civitai_tui.runtime_settings import api_options, download_settings

    env, config, parsed = _client_side(targets)
    settings = download_settings(config)
    if connections:
        settings.connections = connections
    if bulk.get("max_speed") is not None:
        settings.speed.set_overall(bulk["max_speed"])
    options = _get_options(config, bulk, dest, max_files, allow_http, tuned=not connections)
    bus = EventBus()
    if dry_run:
        _dry_run(parsed, options, env, bus, api_options(config), as_json, " ".join(targets))
    collector = _analytics(config, bus)
    display = ProgressDisplay(err_console) if err_console.is_terminal and not as_json else None

    def planned(requests: list[Any]) -> None:
        if display is not None:
            display.start(len(requests))
            bus.add_callback(display)

    try:
        report = _run(
            run_get(
                parsed,
                options,
                base_url=env.base_url,
                api_key=_api_key(env),
                settings=settings,
                bus=bus,
                on_planned=planned,
                limiters=api_options(config),
            )
        )
    except KeyboardInterrupt:
        interrupted = True
    else:
        interrupted = False
    finally:
        if display is not None:
            display.stop()
        if collector is not None:
            collector.close()
    if interrupted:
        err_console.print(
            f"interrupted: partial downloads are kept in {options.plan.dest} (*.part); "
            "run the same command again to resume them",
            markup=False,
        )
        raise SystemExit(EXIT_INTERRUPTED)
    if not report.results and not report.plan_failures:
        _fail(f"nothing matched {' '.join(targets)}: no files to download", EXIT_NOTHING)
    _print_report(report, as_json)
    raise SystemExit(0 if report.ok else 1)


def _client_side(targets: tuple[str, ...]) -> tuple[Environment, Config, list[Target]]:
    """Set this process up to talk to CivitAI itself (``get``, ``--dry-run``): the URL
    policy of the API origin, logging, proxies and CAs; then the config and the targets."""
    from civitai_tui.logs import setup_logging
    from civitai_tui.net.network import Network
    from civitai_tui.net.network import install as install_network
    from civitai_tui.net.policy import UrlPolicy, install

    env = Environment.from_env()
    install(UrlPolicy.for_origin(env.base_url))
    config = _config()
    parsed = _targets(targets, env.base_url)
    setup_logging(state_dir())
    try:
        install_network(Network.from_config(config))
    except CivitaiTuiError as err:
        _fail(err.message, 2)
    return env, config, parsed


def _dry_run(
    parsed: list[Target],
    options: GetOptions,
    env: Environment,
    bus: Any,
    limiters: Any,
    as_json: bool,
    asked: str,
) -> None:
    """``get --dry-run``: print the plan and exit (0, 1 if a target failed, 3 if empty)."""
    from civitai_tui.dry_run import build_plan, print_plan
    from civitai_tui.oneshot import plan_get

    requests, failures = _run(
        plan_get(
            parsed,
            options,
            base_url=env.base_url,
            api_key=_api_key(env),
            bus=bus,
            limiters=limiters,
        )
    )
    plan = build_plan(requests, failures, options.plan.dest)
    if as_json:
        click.echo(json.dumps(plan.to_dict()))
    else:
        print_plan(Console(), plan)
    if not requests and not failures:
        _fail(f"nothing matched {asked}: no files to download", EXIT_NOTHING)
    raise SystemExit(1 if failures else 0)


def _get_options(
    config: Config,
    bulk: dict[str, Any],
    dest: Path | None,
    max_files: int | None,
    allow_http: bool,
    *,
    tuned: bool,
) -> GetOptions:
    """What one `get` run does, from its flags and the config (``tuned``: the optimizer runs)."""
    from civitai_tui.binding import from_config
    from civitai_tui.bulk.placement import LibrarySettings
    from civitai_tui.oneshot import GetOptions
    from civitai_tui.perf.config import OptimizationConfig
    from civitai_tui.perf.memory import FILE_NAME as HOST_MEMORY_FILE

    library = from_config(LibrarySettings, config)
    return GetOptions(
        plan=_job_options(bulk, dest, config).plan_options(library.preview_nsfw_level),
        max_files=max_files or config.get("bulk.max_files"),
        allow_http=allow_http,
        optimization=from_config(OptimizationConfig, config) if tuned else None,
        host_memory=state_dir() / HOST_MEMORY_FILE,
        library=library,
    )


def _api_key(env: Environment) -> str | None:
    """``CIVITAI_API_KEY``, else the token ``civitai-tui login`` stored."""
    return env.api_key or load_token(state_dir())


def _job_options(bulk: dict[str, Any], dest: Path | None, config: Config) -> JobOptions:
    """The bulk and file-selection flags (``bulk_options``) and ``--dest`` as job options."""
    return JobOptions(
        dest=str(resolve_dest(dest, config.get("bulk.dest"))),
        latest_only=not bulk["all_versions"],
        limit=bulk["limit"],
        types=tuple(_api_value(t, MODEL_TYPES, "model type") for t in bulk["types"]),
        base_models=tuple(bulk["base_models"]),
        sort=bulk["sort"] and _api_value(bulk["sort"], SORTS, "sort"),
        period=bulk["period"] and _api_value(bulk["period"], PERIODS, "period"),
        nsfw=bulk["nsfw"],
        primary_only=not bulk["all_files"],
        formats=tuple(bulk["formats"]),
        max_speed=bulk.get("max_speed") or None,
    )


def _api_value(value: str, allowed: tuple[str, ...], what: str) -> str:
    """A filter value in the API's spelling (any case); bad usage names the allowed ones."""
    try:
        return canonical(value, allowed, what)
    except CivitaiTuiError as err:
        raise click.UsageError(err.message) from None


def _analytics(config: Config, bus: Any) -> Any:
    """Record this run's events in analytics.db when analytics are on."""
    from civitai_tui.analytics.collector import AnalyticsCollector
    from civitai_tui.analytics.settings import AnalyticsSettings
    from civitai_tui.binding import from_config

    settings = from_config(AnalyticsSettings, config)
    return AnalyticsCollector.for_bus(bus, settings) if settings.enabled else None


def _error_dict(err: CivitaiTuiError | None) -> dict[str, Any] | None:
    if err is None:
        return None
    return {"kind": str(err.kind), "message": err.message, "status": err.status}


def _print_report(report: Any, as_json: bool) -> None:
    from civitai_tui.console import SummaryRow, print_summary

    files = [
        {
            "name": req.filename or req.info.name,
            "path": str(res.path) if res.path else None,
            "bytes": res.bytes,
            "fetched_bytes": res.fetched_bytes,
            "sha256": res.sha256,
            "status": res.status,
            "verified": res.verified,
            "error": _error_dict(res.error),
            "quarantined": str(res.quarantined) if res.quarantined else None,
            "warning": res.warning,
            "model_id": req.info.model_id,
            "version_id": req.info.version_id,
            "file_id": req.info.file_id,
            "duration": round(res.duration, 3),
            "connections": res.connections,
            "retries": res.retries,
        }
        for req, res in report.results
    ]
    failures = [{"target": f.target, "error": _error_dict(f.error)} for f in report.plan_failures]
    if as_json:
        counts = {
            s: sum(1 for f in files if f["status"] == s) for s in ("completed", "skipped", "failed")
        }
        summary = {
            "ok": report.ok,
            "files": files,
            "target_failures": failures,
            "totals": {"files": len(files), **counts, "bytes": sum(f["bytes"] for f in files)},
        }
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [
        SummaryRow(
            f["name"],
            f["status"],
            f["bytes"],
            f["error"]["message"]
            if f["error"]
            else "; ".join(filter(None, (f["path"], f["warning"]))),
        )
        for f in files
    ]
    rows += [SummaryRow(f["target"], "failed", 0, f["error"]["message"]) for f in failures]
    print_summary(Console(), rows)


# -------------------------------------------------------------- simulator & demo


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, help="API origin port.")
@click.option("--storage-port", default=0, help="Storage origin port (default: a free one).")
@click.option("--seed", default=1, show_default=True, help="Catalogue seed.")
@click.option(
    "--rate", type=SPEED, metavar="RATE", default="0", help="Cap each storage connection (2MB, 0)."
)
@click.option(
    "--total-rate", type=SPEED, metavar="RATE", default="0", help="Cap the storage origin overall."
)
@click.option("--latency", type=click.FloatRange(0), default=0.0, help="Seconds to first byte.")
@click.option(
    "--reset-every", type=SPEED, metavar="RATE", default="0", help="Reset after this many bytes."
)
@click.option("--fail-status", type=click.IntRange(0, 599), default=0, help="e.g. 503 or 429.")
@click.option("--fail-count", type=click.IntRange(0), default=0, help="Requests that get it.")
@click.option("--retry-after", type=click.FloatRange(0), default=0.0, help="Its Retry-After.")
@click.option(
    "--max-connections", type=click.IntRange(0), default=0, help="Refuse above this many."
)
def simulator(host: str, port: int, storage_port: int, seed: int, **knobs: Any) -> None:
    """Run the CivitAI simulator alone (API origin + storage origin).

    The fault options apply to every file the storage origin serves (the same
    knobs the tests set per file); 0 leaves one off.
    """
    from civitai_tui.simulator.server import serve_forever

    faults = {
        "per_connection_rate": knobs["rate"],
        "total_rate": knobs["total_rate"],
        "first_byte_latency": knobs["latency"],
        "reset_after_bytes": knobs["reset_every"],
        "fail_status": knobs["fail_status"],
        "fail_count": knobs["fail_count"],
        "retry_after": knobs["retry_after"],
        "max_connections": knobs["max_connections"],
    }
    serve_forever(host=host, api_port=port, storage_port=storage_port, seed=seed, faults=faults)


@main.command()
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo's models go (default: <state dir>/demo/models).",
)
@click.option("--no-tui", is_flag=True, help="Download the sample with progress bars instead.")
def demo(dest: Path | None, no_tui: bool) -> None:
    """The built-in CivitAI simulator with a sample queue, in the UI (offline)."""
    from civitai_tui.demo import run_demo, run_tui_demo

    home = state_dir() / "demo"
    models = dest or home / "models"
    if no_tui:
        raise SystemExit(run_demo(models, home, err_console))
    _need_terminal()
    _run(run_tui_demo(home, models))


# -------------------------------------------------------------------- the engine


@main.group(invoke_without_command=True)
@click.option("--allow-http", is_flag=True, help="Allow plain http:// to non-loopback hosts.")
@click.option("--tcp", help="Also listen on HOST:PORT (needs a token: --token-file or env).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A 0600 file holding the TCP listener's token (or set CIVITAI_TUI_ENGINE_TOKEN).",
)
@click.option("--new-token", is_flag=True, help="Write a fresh token to --token-file first.")
@click.option("--token", hidden=True, help="Refused: a token in argv is visible to all users.")
@click.pass_context
def engine(
    ctx: click.Context,
    allow_http: bool,
    tcp: str | None,
    token_file: Path | None,
    new_token: bool,
    token: str | None,
) -> None:
    """Run the engine in the foreground (`engine stop` stops a running one)."""
    if ctx.invoked_subcommand is not None:
        return
    from civitai_tui.engine.process import run_engine
    from civitai_tui.engine.remote import TOKEN_HOWTO, load_token, write_new_token

    if token is not None:
        raise click.UsageError(
            f"--token is refused: every local user can read a command line (ps); {TOKEN_HOWTO}"
        )
    listen = None
    if tcp:
        host, _, port = tcp.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise click.BadParameter("expected HOST:PORT", param_hint="--tcp")
        listen = (host.strip("[]"), int(port))
    if new_token and token_file is None:
        raise click.UsageError("--new-token needs --token-file PATH to write the token to")
    try:
        if new_token:
            write_new_token(token_file)
            err_console.print(f"wrote a new control token to {token_file} (mode 0600)")
        secret = load_token(token_file) if listen else None
    except OSError as exc:
        _fail(f"cannot write the token file {token_file} ({exc.strerror})", 1)
    except CivitaiTuiError as err:
        _fail(err.message, 2)
    _run(run_engine(state_dir(), allow_http=allow_http, tcp=listen, token=secret))


@engine.command("stop")
def engine_stop() -> None:
    """Stop the running engine (jobs are saved and resume on the next start)."""
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.process import EnginePaths, engine_answers

    async def stop() -> bool:
        paths = EnginePaths(state_dir())
        if not await engine_answers(paths):
            return False
        async with EngineClient(paths.socket) as client:
            await client.shutdown()
        return True

    click.echo("engine stopping" if _run(stop()) else "no engine is running")


@engine.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def engine_status(as_json: bool) -> None:
    """Whether an engine runs for this state dir: pid, uptime, version, token, jobs.

    Says whether an API token is loaded and where it came from, never the token.
    Exit status 0 when an engine runs, 1 when none does.
    """
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.process import EnginePaths, engine_answers

    home = state_dir()

    async def status() -> dict[str, Any] | None:
        paths = EnginePaths(home)
        if not await engine_answers(paths):
            return None
        async with EngineClient(paths.socket) as client:
            return await client.status()

    found = _run(status())
    if as_json:
        click.echo(
            json.dumps(
                {"running": False, "state_dir": str(home)}
                if found is None
                else {"running": True, **found}
            )
        )
    elif found is not None:
        token = f"loaded (from the {found['token_source']})" if found["token"] else "none"
        jobs = ", ".join(f"{n} {s}" for s, n in sorted(found["jobs"].items())) or "none"
        for label, value in (
            ("engine", f"running, pid {found['pid']}, version {found['version']}"),
            ("uptime", f"{found['uptime']:.0f} s"),
            ("state dir", found["state_dir"]),
            ("API token", token),
            ("jobs", jobs),
            *[(name, str(value)) for name, value in found.get("network", {}).items()],
            *([("fleet", _fleet_line(found))] if found.get("fleet") else []),
            *(
                [("state.db", f"cannot save: {found['store_error']}")]
                if found.get("store_error")
                else []
            ),
        ):
            click.echo(f"{label + ':':<11}{value}")
    else:
        click.echo(f"no engine is running for {home}")
    raise SystemExit(0 if found is not None else 1)


def _fleet_line(found: dict[str, Any]) -> str:
    """``engine status``'s fleet line: the server, this engine's name and files, trouble."""
    work = found.get("fleet_engine") or {}
    line = f"{found['fleet']} as {printable(work.get('name', '?'))}, "
    line += f"{work.get('in_flight', 0)} file(s) held"
    if work.get("server_error"):
        line += f"; server unreachable ({work['server_error']}): no new work is taken"
    return line


def _with_engine(call: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``call(client)`` against the engine, starting it when none runs."""
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.process import ensure_engine

    async def go() -> T:
        socket = await ensure_engine(state_dir())
        async with EngineClient(socket) as client:
            return await call(client)

    return _run(go())


def _fleet() -> Any:
    """The fleet's server (``fleet.url``), or None: the queue commands use the local engine."""
    from civitai_tui.fleet.connection import fleet_url

    try:
        return fleet_url(_config())
    except CivitaiTuiError as err:
        _fail(err.message, 2)


def _on_fleet(fleet: Any, call: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``call(queue)`` on the fleet's queue (fleet mode: no local engine needed)."""
    from civitai_tui.fleet.commands import fleet_queue

    async def go() -> T:
        async with fleet_queue(fleet, _config().get("network.ca_bundle")) as queue:
            return await call(queue)

    return _run(go())


# ----------------------------------------------------------------- queue control


@main.command()
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option("--priority", "-p", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--dest", "-d", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="A name for the job.")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (files, sizes, paths by the library rules, what is present, free "
    "space after); queue nothing, start no engine.",
)
@bulk_options
def add(
    targets: tuple[str, ...],
    priority: int,
    dest: Path | None,
    name: str | None,
    as_json: bool,
    dry_run: bool,
    **bulk: Any,
) -> None:
    """Queue a job for TARGETs (the engine downloads it in the background)."""
    if dry_run:
        # Planned here, with the queue's own planner and library rules: the plan the
        # engine would make, without a job, an engine or an /api/download hit.
        from civitai_tui.events import EventBus
        from civitai_tui.runtime_settings import api_options

        env, config, parsed = _client_side(targets)
        options = _get_options(config, bulk, dest, None, False, tuned=False)
        _dry_run(parsed, options, env, EventBus(), api_options(config), as_json, " ".join(targets))
    env = Environment.from_env()
    expanded = expand_target_args(targets)
    _targets(tuple(expanded), env.base_url)
    config = _config()
    fleet = _fleet()
    if fleet is not None:
        job = _fleet_add(fleet, tuple(expanded), bulk, dest, name, priority)
    else:
        options = _job_options(bulk, dest, config).to_dict()  # absolute: the engine's cwd differs
        job = _with_engine(lambda c: c.add(expanded, priority=priority, options=options, name=name))
    if as_json:
        click.echo(json.dumps(job))
    else:
        click.echo(f"queued job {job['id']}: {printable(job['name'])} (priority {job['priority']})")


def _fleet_add(
    fleet: Any,
    targets: tuple[str, ...],
    bulk: dict[str, Any],
    dest: Path | None,
    name: str | None,
    priority: int,
) -> dict[str, Any]:
    """``add`` in fleet mode: planned here (as ``--dry-run`` plans), its files queued on the
    fleet's server for any engine to claim; the destination must be the same path on the
    engines (shared storage)."""
    from civitai_tui.bulk.manager import default_name
    from civitai_tui.events import EventBus
    from civitai_tui.fleet.commands import job_view
    from civitai_tui.fleet.records import request_text
    from civitai_tui.oneshot import plan_get
    from civitai_tui.runtime_settings import api_options

    env, config, parsed = _client_side(targets)
    options = _get_options(config, bulk, dest, None, False, tuned=False)
    requests, failures = _run(
        plan_get(
            parsed,
            options,
            base_url=env.base_url,
            api_key=_api_key(env),
            bus=EventBus(),
            limiters=api_options(config),
        )
    )
    errors = "; ".join(f"{f.target}: {f.error.message}" for f in failures)
    if not requests:
        _fail(errors or f"nothing matched {' '.join(targets)}: no files to download", EXIT_NOTHING)
    models = {r.info.model_name for r in requests if r.info.model_name}
    title = name or (models.pop() if len(models) == 1 else default_name(parsed))

    async def call(queue: Any) -> dict[str, Any]:
        extra = {"error": errors} if errors else {}
        job_id = await queue.add_job(
            [request_text(r) for r in requests], name=title, priority=priority, extra=extra
        )
        [job] = await queue.jobs(files=True, ids=[job_id])
        return job_view(job, with_files=False)

    return _on_fleet(fleet, call)


@main.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """List the jobs in queue order (--json: with each file's path, or why it has none)."""
    from civitai_tui.console import print_jobs

    fleet = _fleet()
    if fleet is not None:
        from civitai_tui.fleet.commands import views

        jobs = _on_fleet(fleet, lambda q: views(q, with_files=as_json))
    else:
        jobs = _with_engine(lambda c: c.jobs(files=as_json))
    if as_json:
        click.echo(json.dumps(jobs))
    else:
        print_jobs(Console(), jobs)


@main.command()
@click.option(
    "--dest",
    "-d",
    "dests",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder to check (repeatable; default: bulk.dest, else the current folder).",
)
@click.option("--refresh", is_flag=True, help="Ask CivitAI again instead of the cached answers.")
@click.option("--queue", is_flag=True, help="Queue every newer version beside the file it updates.")
@click.option("--json", "as_json", is_flag=True)
def updates(dests: tuple[Path, ...], refresh: bool, queue: bool, as_json: bool) -> None:
    """Which model files in your library have a newer version on CivitAI (by SHA256).

    Files are hashed once (the library index) and looked up 100 at a time, answers
    cached for browse.cache_ttl; --queue downloads the updates, deleting nothing.
    """
    from civitai_tui.console import print_library

    folders = [str(resolve_dest(d)) for d in dests] or [
        str(resolve_dest(None, _config().get("bulk.dest")))
    ]

    async def call(client: Any) -> tuple[list[Any], list[str]]:
        entries = await client.library(folders, refresh=refresh)
        wanted = sorted({e.newest_version_id for e in entries if e.has_update})
        jobs = await client.queue_updates(wanted, None) if queue and wanted else []
        return entries, jobs

    entries, jobs = _with_engine(call)
    if as_json:
        click.echo(json.dumps({"entries": [e.to_dict() for e in entries], "jobs": jobs}))
        return
    print_library(Console(), entries)
    if jobs:
        click.echo(f"queued {len(jobs)} update job(s): {', '.join(jobs)}")


def _job_action(action: str, job_ids: tuple[str, ...]) -> None:
    async def call(client: Any) -> list[dict[str, Any]]:
        return [await client.action(job_id, action) for job_id in job_ids]

    fleet = _fleet()
    if fleet is not None:
        from civitai_tui.fleet.commands import act

        jobs = _on_fleet(fleet, lambda q: act(q, job_ids, action))
    else:
        jobs = _with_engine(call)
    for job in jobs:
        click.echo(f"{job['id']}: {job['state']}")


@main.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB...")
def pause(job_ids: tuple[str, ...]) -> None:
    """Pause jobs (their partial data is kept)."""
    _job_action("pause", job_ids)


@main.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB...")
def resume(job_ids: tuple[str, ...]) -> None:
    """Resume paused jobs."""
    _job_action("resume", job_ids)


@main.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB...")
def cancel(job_ids: tuple[str, ...]) -> None:
    """Cancel jobs and remove their partial data."""
    _job_action("cancel", job_ids)


@main.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB...")
def retry(job_ids: tuple[str, ...]) -> None:
    """Queue finished jobs again: files no longer in place (or failed) are fetched again."""
    _job_action("retry", job_ids)


@main.command("max-speed")
@click.argument("job_id", metavar="JOB")
@click.argument("value", type=SPEED, metavar="SPEED")
def max_speed(job_id: str, value: int) -> None:
    """Set a job's own speed limit now (e.g. 5MB; 0: none but the overall one)."""
    job = _with_engine(lambda c: c.set_max_speed(job_id, value))
    click.echo(f"{job['id']}: max speed {format_speed(job['max_speed'] or 0)}")


@main.command()
@click.argument("job_id", metavar="JOB")
@click.argument("value", type=int, metavar="N")
def priority(job_id: str, value: int) -> None:
    """Set a job's priority (higher runs first)."""
    fleet = _fleet()
    if fleet is not None:
        from civitai_tui.fleet.commands import act

        [job] = _on_fleet(fleet, lambda q: act(q, [job_id], "priority", value))
    else:
        job = _with_engine(lambda c: c.set_priority(job_id, value))
    click.echo(f"{job['id']}: priority {job['priority']}")


#: ``wait``'s exit status (README, ``wait --help``); 2 stays bad usage as everywhere.
WAIT_COMPLETED, WAIT_FAILED, WAIT_TIMEOUT, WAIT_ENGINE_GONE = 0, 1, 3, 4
WAIT_POLL_SECONDS = 0.5


@main.command()
@click.argument("job_ids", nargs=-1, metavar="[JOB...]")
@click.option("--timeout", type=float, help="Give up after this many seconds.")
def wait(job_ids: tuple[str, ...], timeout: float | None) -> None:
    """Wait until the jobs (default: the whole queue) are finished or paused.

    On a terminal a progress bar shows files and bytes done (on stderr).

    \b
    Exit status:
      0  every job completed
      1  some job failed, was cancelled or is paused
      2  bad usage
      3  not finished within --timeout
      4  the engine stopped or went away while waiting
    """
    from civitai_tui.console import QueueProgress

    ids = list(job_ids) or None
    fleet = _fleet()
    if fleet is not None:
        _fleet_wait(fleet, ids, timeout)
        return

    async def watch(client: Any, progress: QueueProgress) -> None:
        while True:
            jobs = await client.jobs()
            progress.update([j for j in jobs if ids is None or j["id"] in ids])
            await asyncio.sleep(WAIT_POLL_SECONDS)  # a display refresh, not a wait for a state

    async def call(client: Any) -> dict[str, Any]:
        try:
            if not err_console.is_terminal:
                return await client.wait(ids, timeout)
            with QueueProgress(err_console) as progress:
                watcher = asyncio.create_task(watch(client, progress))
                try:
                    return await client.wait(ids, timeout)
                finally:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
        except CivitaiTuiError as err:
            if err.kind is not FailureKind.ENGINE:
                raise
            return {"gone": err.message}

    result = _with_engine(call)
    if "gone" in result:
        _fail(f"the engine went away while waiting: {result['gone']}", WAIT_ENGINE_GONE)
    if result.get("stopped"):
        _fail(
            "engine stopped while waiting (`civitai-tui engine stop` or a signal); "
            "the jobs resume when it starts again",
            WAIT_ENGINE_GONE,
        )
    if not result["finished"]:
        _fail(f"not finished within {timeout:g} s", WAIT_TIMEOUT)
    if not result["ok"]:
        _fail("some jobs did not complete; see `civitai-tui ls`", WAIT_FAILED)
    click.echo("all jobs completed")


def _fleet_wait(fleet: Any, ids: list[str] | None, timeout: float | None) -> None:
    """``wait`` in fleet mode: the server's job states, polled (same exit statuses)."""
    from civitai_tui.fleet.commands import wait as fleet_wait

    try:
        jobs = _on_fleet(fleet, lambda q: fleet_wait(q, ids, timeout))
    except TimeoutError:
        _fail(f"not finished within {timeout:g} s", WAIT_TIMEOUT)
    if not all(j["state"] == "completed" for j in jobs):
        _fail("some jobs did not complete; see `civitai-tui ls`", WAIT_FAILED)
    click.echo("all jobs completed")


@main.group()
def fleet() -> None:
    """Fleet mode: many engines working from one queue on a Valkey/Redis server (fleet.url)."""


@fleet.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def fleet_status(as_json: bool) -> None:
    """The fleet's engines (alive, host, files in flight, throughput, last seen) and queue."""
    from civitai_tui.fleet.commands import status

    url = _fleet()
    if url is None:
        _fail("no fleet: set fleet.url (or CIVITAI_TUI_FLEET) to a Valkey/Redis server", 2)
    found = _on_fleet(url, status)
    if as_json:
        click.echo(json.dumps({"server": str(url), **found}))
        return
    click.echo(f"server: {url}")
    now = time.time()
    for e in found["engines"]:
        alive = "alive" if e["alive"] else "gone"
        click.echo(
            f"  {printable(e['name'])}: {alive}, host {printable(e['host']) or '?'}, "
            f"{e['in_flight']} file(s) in flight, {format_speed(int(e['bytes_per_second']))}, "
            f"last seen {now - e['last_seen']:.0f} s ago"
        )
    if not found["engines"]:
        click.echo("  no engine has joined")
    queue = found["queue"]
    jobs = ", ".join(f"{n} {s}" for s, n in sorted(queue["jobs"].items())) or "none"
    click.echo(
        f"jobs: {jobs}; files queued {queue['files_queued']}, "
        f"held by engines {queue['files_leased']}"
    )


# ------------------------------------------------------------------- credentials


@main.command()
@click.option("--no-check", is_flag=True, help="Store the token without asking CivitAI first.")
def login(no_check: bool) -> None:
    """Store your CivitAI API token (asked for, or read from stdin) for the engine.

    The token is checked against the API, then kept in `credentials` in the state
    dir (mode 0600) and nowhere else; a running engine picks it up at once.
    """
    from civitai_tui.civitai.client import CivitAIClient
    from civitai_tui.credentials import check_token, save_token

    if sys.stdin.isatty():
        raw = click.prompt("CivitAI API token", hide_input=True, err=True)
    else:
        raw = sys.stdin.readline()
    try:
        token = check_token(raw)
    except CivitaiTuiError as err:
        _fail(err.message, 2)

    async def check() -> None:
        async with CivitAIClient(Environment.from_env().base_url, token) as client:
            await client.check_token()

    if not no_check:
        try:
            asyncio.run(check())
        except CivitaiTuiError as err:
            _fail(f"not stored: {err.message}")
    path = save_token(state_dir(), token)
    click.echo(f"token stored in {path}" + ("" if no_check else " (CivitAI accepted it)"))


@main.command()
def logout() -> None:
    """Remove the stored API token (and any token a client handed to the engine)."""
    from civitai_tui.credentials import credentials_path, remove_token
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.process import EnginePaths, engine_answers

    home = state_dir()
    removed = remove_token(home)

    async def tell_engine() -> str | None:
        paths = EnginePaths(home)
        if not await engine_answers(paths):
            return None
        async with EngineClient(paths.socket) as client:
            return (await client.forget_token())["token_source"]

    left = _run(tell_engine())
    click.echo(f"removed {credentials_path(home)}" if removed else "no stored token to remove")
    if left:
        click.echo(f"the running engine still has a token from its {left}")


# ------------------------------------------------------------------------ config


@main.group()
def config() -> None:
    """Read or change settings (config.toml in the state dir)."""


@config.command("get")
@click.argument("key", required=False)
def config_get(key: str | None) -> None:
    """Print KEY's value, or every key with its value."""
    cfg = _config()
    try:
        shown = cfg.shown()
        items = [(key, shown[config_option(key).key])] if key else sorted(shown.items())
    except CivitaiTuiError as err:
        _fail(err.message, 2)
    for name, value in items:
        click.echo(f"{name} = {json.dumps(value)}" if not key else json.dumps(value))


@config.command("set")
@click.argument("key")
@click.argument("value")
def config_set(key: str, value: str) -> None:
    """Set KEY to VALUE (a running engine applies it at once)."""
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.process import EnginePaths, engine_answers

    cfg = _config()
    try:
        parsed = cfg.set(key, value)
    except CivitaiTuiError as err:
        _fail(err.message, 2)

    async def tell_engine() -> bool:
        paths = EnginePaths(state_dir())
        if not await engine_answers(paths):
            return False
        async with EngineClient(paths.socket) as client:
            await client.set_config(key, parsed)
        return True

    notes = {
        "live": " (applied to the running engine)",
        "restart": " (takes effect when the engine or the UI restarts)",
        "command": " (used by the next command)",
    }
    live = _run(tell_engine())
    shown = json.dumps(config_option(key).shown(parsed))
    click.echo(f"{key} = {shown}" + (notes[OPTIONS[key].applies] if live else ""))


@config.command("keys")
def config_keys() -> None:
    """Every key with its default and meaning."""
    for opt in OPTIONS.values():
        when = {"live": "", "restart": "; on restart", "command": "; per command"}[opt.applies]
        click.echo(f"{opt.key} = {json.dumps(opt.default)}  # {opt.help} ({opt.allowed()}{when})")


main.add_command(report)

if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

"""The `hitl` command: every way the system runs, plus admin tasks."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from hitl_shared.settings import Settings

T = TypeVar("T")

WORKER_METRICS_PORTS = {"processor": 9101, "router": 9102, "feedback": 9103}


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as e:  # pydantic's message names the variable and the problem
        raise click.ClickException(f"configuration error: {e}") from e


def _run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(fn())


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@click.group()
def main() -> None:
    """Human-in-the-loop AI review platform."""


@main.command()
@click.option("--port", type=int, default=None, help="HTTP port (env HITL_PORT, default 8000)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the SQLite file lives (env HITL_DATA_DIR, default ./hitl-data)",
)
def up(port: int | None, host: str, data_dir: Path | None) -> None:
    """Run every service in one process (embedded mode: SQLite, in-process queue, local AI)."""
    import uvicorn

    from hitl_shared.assembly import Embedded
    from hitl_shared.runtime import freeze_startup_heap

    _logging()
    settings = _settings()
    if port is not None:
        settings.port = port
    if data_dir is not None:
        settings.data_dir = data_dir
    embedded = Embedded(settings)

    def announce(e: Embedded) -> None:
        r = e.bootstrap_result
        url = f"http://{host}:{settings.port}"
        lines = [
            "",
            "HITL review platform is running (embedded mode)",
            f"  Review UI:   {url}/",
            f"  Ingest API:  {url}/v1/items",
            f"  Metrics:     {url}/metrics",
            f"  Data:        {settings.resolved_database_url()}",
        ]
        if r and r.admin_created:
            pw = r.admin_password or "(from HITL_BOOTSTRAP_ADMIN_PASSWORD)"
            lines.append(f"  Sign in as:  admin / {pw}   (shown once; keep it)")
        if r and r.api_key:
            lines.append(f"  API key:     {r.api_key}   (shown once; keep it)")
        if r and r.demo_items:
            lines.append(f"  Demo items:  {r.demo_items} queued for the AI, then for review")
        click.echo("\n".join(lines) + "\n", err=True)
        freeze_startup_heap()

    embedded.on_ready = announce
    uvicorn.run(embedded.app(), host=host, port=settings.port, log_level="info")


@main.command()
@click.argument("service", type=click.Choice(["ingest", "review-ui", "feedback"]))
@click.option("--port", type=int, default=None)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="uvicorn worker processes")
def serve(service: str, port: int | None, host: str, workers: int) -> None:
    """Run one HTTP service (distributed mode: PostgreSQL + Redis)."""
    import uvicorn

    from hitl_shared.service import load_service

    _logging()
    _settings()
    spec = load_service(service)
    os.environ["HITL_SERVE_SERVICE"] = service
    uvicorn.run(
        "hitl_shared.assembly:serve_app_factory",
        factory=True,
        host=host,
        port=port or spec.default_port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@main.command()
@click.argument("service", type=click.Choice(["processor", "router", "feedback"]))
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Port of the worker's /metrics (default 9101/9102/9103; 0 turns it off)",
)
def worker(service: str, metrics_port: int | None) -> None:
    """Run one queue worker (distributed mode)."""
    from hitl_shared.assembly import run_worker
    from hitl_shared.service import load_service

    _logging()
    settings = _settings()
    if metrics_port is None:
        metrics_port = settings.metrics_port or WORKER_METRICS_PORTS[service]
    run_worker(load_service(service), settings, metrics_port)


async def _with_work(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from hitl_shared.queue.inprocess import InProcessQueue
    from hitl_shared.runtime import create_runtime

    if not settings.database_url:
        db_file = (settings.data_dir / "hitl.sqlite3").resolve()
        if not db_file.exists():
            raise click.ClickException(
                f"no database at {db_file}: start `hitl up` once (or run `hitl migrate`), "
                "or point HITL_DATA_DIR / HITL_DATABASE_URL at your installation"
            )
    queue: Any = InProcessQueue()
    if settings.queue_backend == "arq" and settings.database_url:
        from hitl_shared.queue.arq_backend import ArqQueue

        queue = await ArqQueue.connect(settings.redis_url, settings.queue_prefix)
    runtime = await create_runtime(settings, "hitl-cli", queue=queue)
    try:
        async with runtime.work() as work:
            return await fn(work)
    finally:
        await runtime.close()


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema; create the first admin, API key and demo workflows."""
    from hitl_shared.bootstrap import bootstrap
    from hitl_shared.db.engine import create_engine
    from hitl_shared.db.migrate import upgrade

    settings = _settings()
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> Any:
        engine = create_engine(settings.resolved_database_url(), "hitl-migrate")
        await upgrade(engine)
        await engine.dispose()
        return await _with_work(settings, lambda w: bootstrap(w, settings))

    r = _run(go)
    click.echo("database is at the latest schema")
    if r.admin_created:
        click.echo(f"created admin user 'admin' with password {r.admin_password or '(from env)'}")
    if r.api_key:
        click.echo(f"created API key {r.api_key} (shown once)")


@main.command()
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--block", default=500, show_default=True, help="Items per block (one line each)")
@click.option("--limit", type=int, default=None, help="Replay only the first N rows (shuffled)")
@click.option(
    "--target-error",
    default=0.02,
    show_default=True,
    help="Most errors allowed in the light band, at the 95% lower bound",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the figures as JSON",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the replay's database here (default: a temporary folder)",
)
@click.option("--seed", default=0, show_default=True)
def replay(
    dataset: Path,
    text_column: str,
    label_column: str,
    block: int,
    limit: int | None,
    target_error: float,
    report: Path | None,
    data_dir: Path | None,
    seed: int,
) -> None:
    """Push a labelled CSV through the whole loop with a simulated reviewer; show how review
    load, errors in light review, calibration and reviewer time change block by block."""
    from hitl_shared import replay as rp

    logging.basicConfig(level="WARNING")
    click.echo(rp.HEADER)

    def show(b: dict[str, Any]) -> None:
        click.echo(rp.format_block(b))

    try:
        result = _run(
            lambda: rp.replay(
                dataset,
                text_column,
                label_column,
                block=block,
                limit=limit,
                data_dir=data_dir,
                target_error=target_error,
                seed=seed,
                progress=show,
            )
        )
    except rp.ReplayError as e:
        raise click.ClickException(str(e)) from e
    s = result["summary"]
    click.echo(
        f"summary: last block {s['last_block_light_or_auto_share']:.1%} light/auto with "
        f"{s['last_block_light_or_auto_error_rate']:.2%} errors there; reviewer minutes per 100 "
        f"items {s['first_block_minutes_per_100']} -> {s['last_block_minutes_per_100']} "
        f"(x{s['minutes_ratio_last_to_first']}); {s['wall_seconds']} s"
    )
    if report:
        rp.write_report(report, result)
        click.echo(f"report written to {report}")


@main.group()
def users() -> None:
    """Manage reviewer accounts."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["reviewer", "lead", "admin"]), default="reviewer")
@click.option("--password", default=None, help="Default: a random password, printed once")
def users_create(username: str, role: str, password: str | None) -> None:
    from hitl_shared.bootstrap import create_user
    from hitl_shared.db.models import User
    from hitl_shared.lifecycle import Role
    from hitl_shared.security import generate_password

    settings = _settings()
    pw = password or generate_password()

    async def go(work: Any) -> None:
        exists = await work.session.scalar(sa.select(User.id).where(User.username == username))
        if exists:
            raise click.ClickException(f"a user named {username!r} already exists")
        await create_user(work.session, username, pw, Role(role), actor="cli")

    _run(lambda: _with_work(settings, go))
    click.echo(f"created {role} {username!r}" + ("" if password else f" with password {pw}"))


@main.group("api-keys")
def api_keys() -> None:
    """Manage integration API keys."""


@api_keys.command("create")
@click.argument("name")
@click.option("--workflow", "workflows", multiple=True, help="Limit the key to these workflows")
def api_keys_create(name: str, workflows: tuple[str, ...]) -> None:
    from hitl_shared.bootstrap import create_api_key

    settings = _settings()

    async def go(work: Any) -> str:
        _, key = await create_api_key(
            work.session, name, workflows=list(workflows) or None, actor="cli"
        )
        return key

    key = _run(lambda: _with_work(settings, go))
    click.echo(key)
    click.echo("store this key now: it is not shown again", err=True)


@api_keys.command("list")
def api_keys_list() -> None:
    from hitl_shared.db.models import ApiKey

    settings = _settings()

    async def go(work: Any) -> list[Any]:
        return list(
            (await work.session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at))).all()
        )

    for k in _run(lambda: _with_work(settings, go)):
        state = "revoked" if k.revoked_at else "active"
        click.echo(f"{k.prefix}…  {k.name}  {state}  last used {k.last_used_at or 'never'}")


@main.group()
def workflows() -> None:
    """Manage workflows (YAML configuration, versioned)."""


@workflows.command("apply")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def workflows_apply(files: tuple[Path, ...]) -> None:
    from hitl_shared.workflows.config import WorkflowFileError, load_workflow_file
    from hitl_shared.workflows.store import apply_workflow

    settings = _settings()
    loaded = []
    for f in files:
        try:
            loaded.append(load_workflow_file(f))
        except WorkflowFileError as e:
            raise click.ClickException(str(e)) from e

    async def go(work: Any) -> list[str]:
        out = []
        for config, source in loaded:
            r = await apply_workflow(work.session, config, source, actor="cli")
            out.append(
                f"{config.name}: version {r.version}" + ("" if r.changed else " (unchanged)")
            )
        return out

    for line in _run(lambda: _with_work(settings, go)):
        click.echo(line)


@workflows.command("list")
def workflows_list() -> None:
    from hitl_shared.db.models import Workflow

    settings = _settings()

    async def go(work: Any) -> list[Any]:
        return list((await work.session.scalars(sa.select(Workflow).order_by(Workflow.name))).all())

    for wf in _run(lambda: _with_work(settings, go)):
        click.echo(f"{wf.name}  {wf.task_type}  version {wf.current_version}")


if __name__ == "__main__":
    main()

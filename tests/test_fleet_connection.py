"""The fleet server's URL: forms, credentials masked everywhere, a real server reached."""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path

import pytest
import redis.exceptions
from hypothesis import given
from hypothesis import strategies as st

from civitai_tui.config import Config
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.fleet.connection import FleetUrl, fleet_url, parse_fleet_url
from civitai_tui.logs import setup_logging
from civitai_tui.security.redact import mask_text
from civitai_tui.simulator.server import Simulator
from tests.helpers import embedded_engine
from tests.redis_server import Factory

SECRET = "fleet-Pa55word-never-shown"


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("redis://127.0.0.1", FleetUrl("redis", "127.0.0.1"), "redis://127.0.0.1:6379"),
        ("redis://h:7000/3", FleetUrl("redis", "h", 7000, db=3), "redis://h:7000/3"),
        ("rediss://[::1]:6380", FleetUrl("rediss", "::1", 6380), "rediss://[::1]:6380"),
        ("unix:///run/v.sock", FleetUrl("unix", socket="/run/v.sock"), "unix:///run/v.sock"),
        (
            "unix:///r/v.sock?db=2",
            FleetUrl("unix", socket="/r/v.sock", db=2),
            "unix:///r/v.sock?db=2",
        ),
    ],
)
def test_the_three_forms(text: str, expected: FleetUrl, shown: str) -> None:
    url = parse_fleet_url(text, "fleet.url")
    assert url == expected
    assert url.display == shown


@pytest.mark.parametrize(
    "text",
    [
        f"redis://engine1:{SECRET}@127.0.0.1:6379/1",
        f"rediss://:{SECRET}@cache.lan",
        f"unix://engine1:{SECRET}@/run/valkey.sock",
        f"unix:///run/valkey.sock?password={SECRET}",
    ],
)
def test_credentials_are_kept_but_never_shown(text: str) -> None:
    url = parse_fleet_url(text, "fleet.url")
    assert url.password == SECRET
    for shown in (url.display, str(url), repr(url), mask_text(f"connecting {text} failed")):
        assert SECRET not in shown
    assert "***@" in url.display


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"http://u:{SECRET}@host", "scheme 'http'"),
        (f"redis://u:{SECRET}@", "names no host"),
        (f"redis://u:{SECRET}@h/x", "database is not a number"),
        (f"unix://u:{SECRET}@relative.sock", "absolute path"),
        (f"redis://u:{SECRET}@h:99999", "not a URL"),
        (f"redis://h?tls=1&password={SECRET}", "unknown parameters"),
    ],
)
def test_bad_urls_are_refused_without_repeating_them(text: str, why: str) -> None:
    with pytest.raises(CivitaiTuiError) as caught:
        parse_fleet_url(text, "fleet.url")
    assert why in caught.value.message
    assert SECRET not in caught.value.message


def test_password_file_must_be_private_and_alone(tmp_path: Path) -> None:
    secret_file = tmp_path / "fleet.pw"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o644)
    with pytest.raises(CivitaiTuiError, match="chmod 600"):
        parse_fleet_url("redis://engine1@h", "fleet.url", str(secret_file))
    secret_file.chmod(0o600)
    url = parse_fleet_url("redis://engine1@h", "fleet.url", str(secret_file))
    assert (url.username, url.password) == ("engine1", SECRET)
    assert SECRET not in repr(url) + url.display
    with pytest.raises(CivitaiTuiError, match="keep one"):
        parse_fleet_url("redis://engine1:other-secret@h", "fleet.url", str(secret_file))


def test_environment_names_the_fleet_and_config_shows_it_masked(tmp_path: Path) -> None:
    text = f"redis://engine1:{SECRET}@127.0.0.1:7000"
    config = Config.load(tmp_path / "config.toml", {"CIVITAI_TUI_FLEET": text})
    assert config.get("fleet.url") == text
    assert config.overridden_by_env("fleet.url")
    assert config.shown()["fleet.url"] == "redis://***@127.0.0.1:7000"
    assert fleet_url(config) == parse_fleet_url(text, "")
    assert fleet_url(Config.load(tmp_path / "config.toml", {})) is None
    with pytest.raises(CivitaiTuiError) as caught:
        Config.load(tmp_path / "config.toml", {"CIVITAI_TUI_FLEET": f"ftp://u:{SECRET}@h"})
    assert "CIVITAI_TUI_FLEET" in caught.value.message and SECRET not in caught.value.message


async def test_a_real_server_with_an_acl_user_is_reached_and_a_wrong_password_is_masked(
    redis_factory: Factory, tmp_path: Path
) -> None:
    server = redis_factory(user="engine1", password=SECRET)
    client = parse_fleet_url(server.url, "fleet.url").client()
    try:
        assert await client.ping()
        assert await client.acl_whoami() == "engine1"
    finally:
        await client.aclose()
    wrong = parse_fleet_url(server.url.replace(SECRET, SECRET[::-1]), "fleet.url").client()
    with pytest.raises(redis.exceptions.AuthenticationError) as caught:
        await wrong.ping()
    await wrong.aclose()
    root = logging.getLogger()
    before = list(root.handlers)
    log_file = setup_logging(tmp_path)
    try:
        logging.getLogger("civitai_tui.fleet").error(
            "fleet down: %s (%s)", caught.value, server.url
        )
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
    logged = log_file.read_text()
    assert "fleet down" in logged and SECRET not in logged


async def test_engine_status_and_config_show_the_fleet_without_credentials(
    sim: Simulator, tmp_path: Path
) -> None:
    config = f'[fleet]\nurl = "redis://engine1:{SECRET}@127.0.0.1:7000/1"\n'
    async with embedded_engine(sim, tmp_path / "home", config) as (_, client, _):
        status = await client.status()
        settings = await client.config()
    assert status["fleet"] == "redis://***@127.0.0.1:7000/1"
    assert settings["fleet.url"] == "redis://***@127.0.0.1:7000/1"
    assert SECRET not in json.dumps(status) + json.dumps(settings)


@given(
    scheme=st.sampled_from(["redis", "rediss", "unix", "http", ""]),
    user=st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=12),
    password=st.text(alphabet=string.ascii_letters + string.digits + "-_.~!$", min_size=8),
    rest=st.text(max_size=30),
)
def test_any_fleet_url_parses_or_is_refused_never_showing_its_password(
    scheme: str, user: str, password: str, rest: str
) -> None:
    secret = "S3cr" + password  # registered secrets shorter than 6 are not masked
    text = f"{scheme}://{user}:{secret}@{rest}"
    try:
        url = parse_fleet_url(text, "fleet.url")
    except CivitaiTuiError as err:
        assert secret not in err.message
        return
    assert secret not in url.display + repr(url) + str(url)

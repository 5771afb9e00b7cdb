"""Config values are validated completely at set time, and the attempt budget is applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.config import OPTIONS, Config, ConfigError
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator.server import Simulator
from tests.helpers import embedded_engine

NUMERIC = [k for k, o in OPTIONS.items() if o.kind in (int, float)]


@pytest.mark.parametrize("key", NUMERIC)
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999", float("nan"), float("inf")])
def test_nan_and_infinity_are_refused(key: str, raw: object, tmp_path: Path) -> None:
    cfg = Config.load(tmp_path / "config.toml", environ={})
    with pytest.raises(ConfigError) as err:
        cfg.set(key, raw)
    assert err.value.message.startswith(f"{key}: ")
    assert cfg.get(key) == OPTIONS[key].default and not (tmp_path / "config.toml").exists()


def test_nan_in_the_file_or_environment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[download]\nstall_timeout = nan\n")
    with pytest.raises(ConfigError, match="stall_timeout"):
        Config.load(path, environ={})
    with pytest.raises(ConfigError, match="CIVITAI_TUI_BULK__PAUSE_BETWEEN_BATCHES"):
        Config.load(
            tmp_path / "none.toml", environ={"CIVITAI_TUI_BULK__PAUSE_BETWEEN_BATCHES": "inf"}
        )


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{nope}/{file_name}", "unknown field(s) nope"),
        ("{type}/{model_id:d}/{file_name}", "cannot be applied"),
        ("{type.__class__}/{file_name}", "unknown field"),
        ("{}/{file_name}", "unknown field"),
        ("{type}/{file_name", "bad layout template"),
        ("{type}/models", "must end in {file_name}"),
    ],
)
def test_bad_templates_are_refused_at_set_time(template: str, words: str, tmp_path: Path) -> None:
    cfg = Config.load(tmp_path / "config.toml", environ={})
    with pytest.raises(ConfigError) as err:
        cfg.set("bulk.template", template)
    assert err.value.message.startswith("bulk.template: ") and words in err.value.message
    assert cfg.get("bulk.template") == OPTIONS["bulk.template"].default


def test_contradicting_chunk_sizes_are_refused(tmp_path: Path) -> None:
    cfg = Config.load(tmp_path / "config.toml", environ={})
    with pytest.raises(ConfigError, match=r"may not exceed performance\.max_chunk_size"):
        cfg.set("performance.min_chunk_size", 64 * 1024 * 1024)
    path = tmp_path / "bad.toml"
    path.write_text("[performance]\nmin_chunk_size = 8388608\nmax_chunk_size = 4194304\n")
    with pytest.raises(ConfigError, match="may not exceed"):
        Config.load(path, environ={})


async def test_the_control_api_refuses_bad_values_and_unknown_fields(
    sim: Simulator, tmp_path: Path
) -> None:
    async with embedded_engine(sim, tmp_path / "state", "") as (engine, client, _):
        for key, value in (
            ("bulk.template", "{nope}/{file_name}"),
            ("download.stall_timeout", "nan"),
            ("bulk.pause_between_batches", "inf"),
        ):
            with pytest.raises(CivitaiTuiError) as err:
                await client.set_config(key, value)
            assert err.value.kind is FailureKind.BAD_CONFIG and key in err.value.message
        assert engine.config.get("bulk.template") == OPTIONS["bulk.template"].default
        with pytest.raises(CivitaiTuiError) as err:
            await client._call("PUT", "/v1/config/bulk.batch_size", {"value": 2, "extra": 1})
        assert (
            "unknown field(s) extra" in err.value.message
            and engine.config.get("bulk.batch_size") == 5
        )


async def test_max_attempts_is_the_number_of_tries(sim: Simulator, tmp_path: Path) -> None:
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    file = model.versions[0].files[0]
    sim.faults.set(file.id, fail_status=500, fail_count=1000)
    config = "[download]\nmax_attempts = 2\n[performance]\nenable_adaptive_retry = false\n"
    async with embedded_engine(sim, tmp_path / "state", config) as (_, client, _):
        job = await client.add(
            [f"model:{model.id}"],
            options={"dest": str(tmp_path / "lib"), "primary_only": False},
        )
        assert (await client.wait([job["id"]], timeout=60))["finished"]
        detail = await client.job(job["id"])
    failed = next(f for f in detail["files"] if f["key"].endswith(f":{file.id}"))
    assert failed["state"] == "failed" and failed["attempts"] == 2, failed

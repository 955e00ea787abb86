"""Worker settings: defaults, precedence (flags > environment > YAML file > defaults), messages, URL forms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openhorde.worker.settings import (
    ANONYMOUS_API_KEY,
    DEFAULT_HORDE_URL,
    WorkerSettings,
    WorkerSettingsError,
    load_settings,
    normalise_horde_url,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No OPENHORDE_WORKER_* variables from outside, and a working directory without a worker.yaml."""
    for name in list(os.environ):
        if name.startswith("OPENHORDE_WORKER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.horde_url == DEFAULT_HORDE_URL
    assert settings.api_url == f"{DEFAULT_HORDE_URL}/api/v2"
    assert settings.api_key == ANONYMOUS_API_KEY
    assert settings.models == ["openhorde-tiny"]
    assert settings.name.startswith("openhorde-")
    assert settings.resolved_max_pixels == 512 * 512
    assert (settings.threads, settings.queue_size, settings.max_batch) == (1, 1, 1)
    assert settings.allow_post_processing is False
    assert settings.device == "auto"
    assert settings.config is None


def test_flags_beat_environment_which_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(
        tmp_path / "w.yaml",
        "name: from-file\nthreads: 2\nqueue_size: 3\nmodels: [a, b]\nhorde_url: http://file.example\n",
    )
    monkeypatch.setenv("OPENHORDE_WORKER_THREADS", "4")
    monkeypatch.setenv("OPENHORDE_WORKER_NAME", "from-env")
    settings = load_settings(config, name="from-flag", max_batch=None)
    assert settings.name == "from-flag"  # flag over environment and file
    assert settings.threads == 4  # environment over file
    assert settings.queue_size == 3  # file over default
    assert settings.models == ["a", "b"]
    assert settings.horde_url == "http://file.example"
    assert settings.max_batch == 1  # a flag given as None counts as not given
    assert settings.config == config


def test_worker_yaml_in_the_working_directory_is_read_by_default(tmp_path: Path) -> None:
    write_config(tmp_path / "worker.yaml", "name: local\nmax-power: 32\n")
    settings = load_settings()
    assert settings.name == "local"
    assert settings.resolved_max_pixels == 1024 * 1024


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "elsewhere.yaml", "name: via-env-config\n")
    monkeypatch.setenv("OPENHORDE_WORKER_CONFIG", str(config))
    assert load_settings().name == "via-env-config"


def test_lists_from_the_environment_are_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENHORDE_WORKER_MODELS", "one, two,one")
    monkeypatch.setenv("OPENHORDE_WORKER_BLACKLIST", '["bad word", "worse"]')
    settings = load_settings()
    assert settings.models == ["one", "two"]
    assert settings.blacklist == ["bad word", "worse"]


def test_max_pixels_wins_over_max_power() -> None:
    assert load_settings(max_power=16).resolved_max_pixels == 16 * 8 * 64 * 64
    assert load_settings(max_power=16, max_pixels=300_000).resolved_max_pixels == 300_000


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:7001", "http://127.0.0.1:7001"),
        ("http://127.0.0.1:7001/", "http://127.0.0.1:7001"),
        ("http://127.0.0.1:7001/api", "http://127.0.0.1:7001"),
        ("https://aihorde.net/api/", "https://aihorde.net"),
        ("https://aihorde.net/api/v2", "https://aihorde.net"),
        ("  https://horde.example/sub/path/api/v2/ ", "https://horde.example/sub/path"),
    ],
)
def test_url_normalisation(given: str, expected: str) -> None:
    assert normalise_horde_url(given) == expected
    assert load_settings(horde_url=given).api_url == f"{expected}/api/v2"


@pytest.mark.parametrize("bad", ["127.0.0.1:7001", "ftp://horde.example", "http://"])
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(WorkerSettingsError, match="option 'horde_url' from command line --horde-url"):
        load_settings(horde_url=bad)


def test_messages_name_the_option_and_the_flag() -> None:
    with pytest.raises(WorkerSettingsError) as caught:
        load_settings(queue_size=9, device="gpu")
    message = str(caught.value)
    assert "option 'queue_size' from command line --queue-size" in message
    assert "less than or equal to 4" in message
    assert "option 'device' from command line --device: " in message
    assert "auto, cpu, mps, cuda or cuda:N" in message


def test_messages_name_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENHORDE_WORKER_MAX_POWER", "lots")
    with pytest.raises(WorkerSettingsError, match="option 'max_power' from environment variable OPENHORDE_WORKER_"):
        load_settings()


def test_messages_name_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "w.yaml", "threads: 0\nlog_format: xml\n")
    with pytest.raises(WorkerSettingsError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert f"option 'threads' from config file {config}" in message
    assert f"option 'log_format' from config file {config}" in message


def test_unknown_option_in_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "w.yaml", "dreamer_name: old-style\n")
    with pytest.raises(WorkerSettingsError, match=r"option 'dreamer_name' from config file .*: unknown option"):
        load_settings(config)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("name: [unclosed\n", "not valid YAML"), ("- a list\n", "must be a mapping"), ("config: x.yaml\n", "config")],
)
def test_malformed_config_files(tmp_path: Path, text: str, problem: str) -> None:
    config = write_config(tmp_path / "w.yaml", text)
    with pytest.raises(WorkerSettingsError, match=f"config file {config}: .*{problem}"):
        load_settings(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(WorkerSettingsError, match="no such file"):
        load_settings(tmp_path / "nope.yaml")


def test_empty_config_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path / "w.yaml", "")).models == ["openhorde-tiny"]


def test_idle_range_must_be_ordered() -> None:
    with pytest.raises(WorkerSettingsError, match="idle_pop_max_seconds must not be below"):
        load_settings(idle_pop_min_seconds=3, idle_pop_max_seconds=1)


def test_the_example_config_loads_and_documents_every_option() -> None:
    example = Path(__file__).resolve().parents[3] / "worker.example.yaml"
    settings = load_settings(example)
    assert settings.models == ["openhorde-tiny"]
    text = example.read_text(encoding="utf-8")
    for option in WorkerSettings.model_fields.keys() - {"config"}:
        assert f"\n{option}:" in text or f"\n# {option}:" in text, f"{option} is not in worker.example.yaml"


def test_post_processors_are_read_from_a_comma_list_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENHORDE_WORKER_POST_PROCESSORS", "GFPGAN, strip_background,GFPGAN")
    assert load_settings().post_processors == ["GFPGAN", "strip_background"]

    monkeypatch.setenv("OPENHORDE_WORKER_POST_PROCESSORS", "GFPGAN,RealESRGAN_x8")
    with pytest.raises(WorkerSettingsError, match=r"unknown post-processor.*RealESRGAN_x8"):
        load_settings()

"""Settings (config.py): the one reader of the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from LLM_Mesh.config import DEFAULT_REGISTRY_URL, Settings, normalize_database_url


def test_defaults_from_empty_env() -> None:
    s = Settings.from_env({})
    assert s.home == Path.home() / ".llm-mesh"
    assert s.registry_url == "http://127.0.0.1:8800" == DEFAULT_REGISTRY_URL
    assert s.database_url is None
    assert s.heartbeat_interval_s == 10.0
    assert s.missed_heartbeats == 3
    assert isinstance(s.missed_heartbeats, int)
    assert s.health_check_interval_s == 300.0
    assert s.request_timeout_s == 120.0
    assert s.heartbeat_expiry_s == 30.0


def test_from_env_reads_os_environ_by_default(tmp_path: Path) -> None:
    # conftest points LLM_MESH_HOME at a tmp dir.
    s = Settings.from_env()
    assert s.home == Path(os.environ["LLM_MESH_HOME"])
    assert s.registry_url == DEFAULT_REGISTRY_URL


def test_from_env_reads_os_environ_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://mesh.example:9000")
    monkeypatch.setenv("LLM_MESH_HEARTBEAT_S", "2")
    s = Settings.from_env()
    assert s.registry_url == "http://mesh.example:9000"
    assert s.heartbeat_interval_s == 2.0


def test_env_parsing(tmp_path: Path) -> None:
    env = {
        "LLM_MESH_HOME": str(tmp_path / "home"),
        "LLM_MESH_REGISTRY_URL": "http://10.0.0.5:8800/",
        "LLM_MESH_DATABASE_URL": "postgresql://u:p@db/mesh",
        "LLM_MESH_HEARTBEAT_S": "2.5",
        "LLM_MESH_MISSED_HEARTBEATS": "4",
        "LLM_MESH_HEALTH_CHECK_S": "60",
        "LLM_MESH_REQUEST_TIMEOUT_S": "30",
    }
    s = Settings.from_env(env)
    assert s.home == tmp_path / "home"
    assert s.registry_url == "http://10.0.0.5:8800"  # trailing slash dropped
    assert s.database_url == "postgresql://u:p@db/mesh"
    assert s.heartbeat_interval_s == 2.5
    assert s.missed_heartbeats == 4
    assert s.health_check_interval_s == 60.0
    assert s.request_timeout_s == 30.0
    assert s.heartbeat_expiry_s == 10.0


def test_home_expands_user() -> None:
    s = Settings.from_env({"LLM_MESH_HOME": "~/mesh-state"})
    assert s.home == Path.home() / "mesh-state"


def test_empty_values_mean_default() -> None:
    env = {
        "LLM_MESH_HOME": "",
        "LLM_MESH_REGISTRY_URL": "",
        "LLM_MESH_DATABASE_URL": "",
        "LLM_MESH_HEARTBEAT_S": "",
        "LLM_MESH_MISSED_HEARTBEATS": "",
    }
    s = Settings.from_env(env)
    assert s.home == Path.home() / ".llm-mesh"
    assert s.registry_url == DEFAULT_REGISTRY_URL
    assert s.database_url is None
    assert s.heartbeat_interval_s == 10.0
    assert s.missed_heartbeats == 3


def test_missed_heartbeats_accepts_integral_float_text() -> None:
    assert Settings.from_env({"LLM_MESH_MISSED_HEARTBEATS": "5.0"}).missed_heartbeats == 5


@pytest.mark.parametrize(
    "key",
    [
        "LLM_MESH_HEARTBEAT_S",
        "LLM_MESH_MISSED_HEARTBEATS",
        "LLM_MESH_HEALTH_CHECK_S",
        "LLM_MESH_REQUEST_TIMEOUT_S",
    ],
)
@pytest.mark.parametrize("raw", ["ten", "1,5", "nan", "inf", "-1", "0"])
def test_bad_numbers_raise_clear_value_error(key: str, raw: str) -> None:
    with pytest.raises(ValueError, match=key) as info:
        Settings.from_env({key: raw})
    assert repr(raw) in str(info.value)


def test_fractional_missed_heartbeats_rejected() -> None:
    with pytest.raises(ValueError, match="LLM_MESH_MISSED_HEARTBEATS"):
        Settings.from_env({"LLM_MESH_MISSED_HEARTBEATS": "2.5"})


def test_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    env = {"LLM_MESH_REGISTRY_URL": "http://from-env:1", "LLM_MESH_HEARTBEAT_S": "7"}
    s = Settings.from_env(
        env,
        registry_url=None,
        heartbeat_interval_s=None,
        database_url=None,
        request_timeout_s=5.0,
        home=tmp_path,
    )
    assert s.registry_url == "http://from-env:1"
    assert s.heartbeat_interval_s == 7.0
    assert s.database_url is None
    assert s.request_timeout_s == 5.0
    assert s.home == tmp_path


def test_override_registry_url_wins_and_is_normalised() -> None:
    s = Settings.from_env(
        {"LLM_MESH_REGISTRY_URL": "http://from-env:1"}, registry_url="http://flag:2/"
    )
    assert s.registry_url == "http://flag:2"


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(TypeError):
        Settings.from_env({}, no_such_setting=1)


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.registry_url = "http://other"  # type: ignore[misc]


def test_effective_database_url_sqlite_default(tmp_path: Path) -> None:
    s = Settings.from_env({"LLM_MESH_HOME": str(tmp_path)})
    url = s.effective_database_url
    assert url == f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    # an absolute path gives the four-slash form SQLAlchemy wants
    assert url.startswith("sqlite+aiosqlite:////")


@pytest.mark.parametrize(
    ("given", "effective"),
    [
        ("postgres://u:p@db:5432/mesh", "postgresql+asyncpg://u:p@db:5432/mesh"),
        ("postgresql://u:p@db:5432/mesh", "postgresql+asyncpg://u:p@db:5432/mesh"),
        ("postgresql+asyncpg://u@db/mesh", "postgresql+asyncpg://u@db/mesh"),
        ("sqlite:///tmp/mesh.db", "sqlite+aiosqlite:///tmp/mesh.db"),
        ("sqlite:////abs/mesh.db", "sqlite+aiosqlite:////abs/mesh.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_effective_database_url_normalises(given: str, effective: str) -> None:
    s = Settings.from_env({"LLM_MESH_DATABASE_URL": given})
    assert s.database_url == given
    assert s.effective_database_url == effective
    assert normalize_database_url(given) == effective


def test_heartbeat_expiry_is_interval_times_missed() -> None:
    s = Settings(heartbeat_interval_s=2.0, missed_heartbeats=5)
    assert s.heartbeat_expiry_s == 10.0


@pytest.mark.parametrize(
    ("raw", "allowed"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("false", False),
     ("off", False), ("", False)],
)  # fmt: skip
def test_allow_private_nodes_from_env(raw: str, allowed: bool) -> None:
    s = Settings.from_env({"LLM_MESH_ALLOW_PRIVATE_NODES": raw})
    assert s.allow_private_nodes is allowed
    assert Settings.from_env({}).allow_private_nodes is False  # global addresses only by default


def test_allow_private_nodes_bad_value_raises() -> None:
    with pytest.raises(ValueError, match="LLM_MESH_ALLOW_PRIVATE_NODES"):
        Settings.from_env({"LLM_MESH_ALLOW_PRIVATE_NODES": "maybe"})


def test_allow_plain_http_nodes_from_env() -> None:
    assert Settings.from_env({}).allow_plain_http_nodes is False  # https off loopback
    assert Settings.from_env({"LLM_MESH_ALLOW_PLAIN_HTTP_NODES": "1"}).allow_plain_http_nodes
    with pytest.raises(ValueError, match="LLM_MESH_ALLOW_PLAIN_HTTP_NODES"):
        Settings.from_env({"LLM_MESH_ALLOW_PLAIN_HTTP_NODES": "maybe"})
    both = Settings(require_tls=True, allow_plain_http_nodes=True)
    with pytest.raises(ValueError, match="not both"):
        both.check_node_transport()
    Settings(require_tls=True).check_node_transport()  # either alone is fine
    Settings(allow_plain_http_nodes=True).check_node_transport()


def test_request_limits_from_env() -> None:
    env = {
        "LLM_MESH_MAX_BODY_BYTES": "2048",
        "LLM_MESH_MAX_JSON_DEPTH": "8",
        "LLM_MESH_MAX_JSON_CONTAINERS": "99",
        "LLM_MESH_MAX_MESSAGES": "10",
        "LLM_MESH_MAX_CONTENT_CHARS": "1000",
        "LLM_MESH_MAX_N": "2",
        "LLM_MESH_MAX_STOP": "3",
        "LLM_MESH_MAX_STOP_CHARS": "16",
    }
    lim = Settings.from_env(env).limits
    assert (
        lim.max_body_bytes, lim.max_json_depth, lim.max_json_containers, lim.max_messages,
        lim.max_content_chars, lim.max_n, lim.max_stop, lim.max_stop_chars,
    ) == (2048, 8, 99, 10, 1000, 2, 3, 16)  # fmt: skip
    assert Settings.from_env({}).limits.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "lots"])
def test_bad_limit_values_raise(raw: str) -> None:
    with pytest.raises(ValueError, match="LLM_MESH_MAX_MESSAGES"):
        Settings.from_env({"LLM_MESH_MAX_MESSAGES": raw})


def test_ledger_settings_from_env() -> None:
    s = Settings.from_env({})
    assert (s.ledger_origin, s.ledger_checkpoint_every, s.ledger_checkpoint_interval_s) == (
        "llm-mesh.local/ledger",
        1000,
        60.0,
    )
    env = {
        "LLM_MESH_LEDGER_ORIGIN": "mesh.example/ledger",
        "LLM_MESH_LEDGER_CHECKPOINT_EVERY": "50",
        "LLM_MESH_LEDGER_CHECKPOINT_S": "5",
    }
    s = Settings.from_env(env)
    assert (s.ledger_origin, s.ledger_checkpoint_every, s.ledger_checkpoint_interval_s) == (
        "mesh.example/ledger",
        50,
        5.0,
    )


def test_ledger_witnesses_from_env_are_checked_key_texts() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from LLM_Mesh.core.witness import witness_key

    assert Settings.from_env({}).ledger_witnesses == ()
    a = witness_key(Ed25519PrivateKey.generate(), "w.test/a").vkey
    b = witness_key(Ed25519PrivateKey.generate(), "w.test/b").vkey
    s = Settings.from_env({"LLM_MESH_LEDGER_WITNESSES": f" {a}, {b},"})
    assert s.ledger_witnesses == (a, b)
    with pytest.raises(ValueError, match=r"LLM_MESH_LEDGER_WITNESSES.*not a witness key"):
        Settings.from_env({"LLM_MESH_LEDGER_WITNESSES": f"{a},junk"})


def test_anonymous_rpm_and_api_key_from_env() -> None:
    assert Settings.from_env({}).anonymous_rpm == 60  # on by default
    assert Settings.from_env({"LLM_MESH_ANONYMOUS_RPM": "5"}).anonymous_rpm == 5
    assert Settings.from_env({"LLM_MESH_ANONYMOUS_RPM": "0"}).anonymous_rpm is None  # no limit
    assert Settings.from_env({}, anonymous_rpm=0).anonymous_rpm is None  # a flag's 0
    assert Settings.from_env({}, anonymous_rpm=7).anonymous_rpm == 7
    for bad in ("-1", "ten", "1.5"):
        with pytest.raises(ValueError, match="LLM_MESH_ANONYMOUS_RPM"):
            Settings.from_env({"LLM_MESH_ANONYMOUS_RPM": bad})
    assert Settings.from_env({"LLM_MESH_API_KEY": " lmk_x "}).api_key == "lmk_x"
    assert "lmk_x" not in repr(Settings.from_env({"LLM_MESH_API_KEY": "lmk_x"}))


def test_anonymous_share_from_env() -> None:
    assert Settings.from_env({}).anonymous_share == 0.75
    assert Settings.from_env({"LLM_MESH_ANONYMOUS_SHARE": "0.5"}).anonymous_share == 0.5
    assert Settings.from_env({"LLM_MESH_ANONYMOUS_SHARE": "1"}).anonymous_share == 1.0
    for bad in ("1.5", "-0.1", "nan", "most"):
        with pytest.raises(ValueError, match="LLM_MESH_ANONYMOUS_SHARE"):
            Settings.from_env({"LLM_MESH_ANONYMOUS_SHARE": bad})


def test_reward_settings_from_env() -> None:
    s = Settings.from_env({})
    assert (s.reward_rate, s.reward_period_s) == (100_000, 3600)
    s = Settings.from_env({"LLM_MESH_REWARD_RATE": "0", "LLM_MESH_REWARD_PERIOD_S": "600"})
    assert (s.reward_rate, s.reward_period_s) == (0, 600)  # rate 0: rewards off
    assert not Settings.from_env({}).reward_simulated  # a sim node's uptime earns nothing
    assert Settings.from_env({"LLM_MESH_REWARD_SIMULATED": "1"}).reward_simulated
    for bad in ("-1", "1.5", "much", "\u00b2", "\u0663"):  # '²', Arabic-Indic 3: str.isdigit()
        with pytest.raises(ValueError, match="LLM_MESH_REWARD_RATE must be a whole number"):
            Settings.from_env({"LLM_MESH_REWARD_RATE": bad})
    for bad in ("0", "-5", "1.5"):
        with pytest.raises(ValueError, match="LLM_MESH_REWARD_PERIOD_S"):
            Settings.from_env({"LLM_MESH_REWARD_PERIOD_S": bad})


def test_an_operators_uptime_cap_from_env() -> None:
    """Documented default: 4 nodes' worth per operator; 0 turns the cap off."""
    assert Settings.from_env({}).reward_uptime_nodes == 4
    assert Settings.from_env({"LLM_MESH_REWARD_UPTIME_NODES": "1"}).reward_uptime_nodes == 1
    assert Settings.from_env({"LLM_MESH_REWARD_UPTIME_NODES": "0"}).reward_uptime_nodes == 0
    for bad in ("-1", "1.5", "many"):
        with pytest.raises(ValueError, match="LLM_MESH_REWARD_UPTIME_NODES must be a whole"):
            Settings.from_env({"LLM_MESH_REWARD_UPTIME_NODES": bad})


def test_the_starts_wait_for_the_due_reward_close_from_env() -> None:
    """Documented default: 30 s; 0: no wait (the close runs beside serving)."""
    assert Settings.from_env({}).reward_start_close_s == 30.0
    env = "LLM_MESH_REWARD_START_CLOSE_S"
    assert Settings.from_env({env: "2.5"}).reward_start_close_s == 2.5
    assert Settings.from_env({env: "0"}).reward_start_close_s == 0.0
    for bad in ("-1", "inf", "soon"):
        with pytest.raises(ValueError, match=env):
            Settings.from_env({env: bad})


def test_request_log_keep_days_from_env() -> None:
    assert Settings.from_env({}).request_log_keep_days == 30
    assert Settings.from_env({"LLM_MESH_REQUEST_LOG_KEEP_DAYS": "7"}).request_log_keep_days == 7
    assert Settings.from_env({"LLM_MESH_REQUEST_LOG_KEEP_DAYS": "0"}).request_log_keep_days == 0
    for bad in ("-1", "1.5", "week"):
        with pytest.raises(ValueError, match="LLM_MESH_REQUEST_LOG_KEEP_DAYS"):
            Settings.from_env({"LLM_MESH_REQUEST_LOG_KEEP_DAYS": bad})


def test_settlement_keep_days_from_env() -> None:
    assert Settings.from_env({}).settlement_keep_days == 400
    assert Settings.from_env({"LLM_MESH_SETTLEMENT_KEEP_DAYS": "730"}).settlement_keep_days == 730
    assert Settings.from_env({"LLM_MESH_SETTLEMENT_KEEP_DAYS": "0"}).settlement_keep_days == 0
    for bad in ("-1", "1.5", "year"):
        with pytest.raises(ValueError, match="LLM_MESH_SETTLEMENT_KEEP_DAYS"):
            Settings.from_env({"LLM_MESH_SETTLEMENT_KEEP_DAYS": bad})


def test_unpaid_keep_days_from_env() -> None:
    assert Settings.from_env({}).unpaid_keep_days == 400
    env = "LLM_MESH_UNPAID_KEEP_DAYS"
    assert Settings.from_env({env: "30"}).unpaid_keep_days == 30
    assert Settings.from_env({env: "0"}).unpaid_keep_days == 0


def test_cut_receipt_keep_days_from_env() -> None:
    assert Settings.from_env({}).cut_receipt_keep_days == 400
    env = "LLM_MESH_CUT_RECEIPT_KEEP_DAYS"
    assert Settings.from_env({env: "30"}).cut_receipt_keep_days == 30
    assert Settings.from_env({env: "0"}).cut_receipt_keep_days == 0
    for bad in ("-1", "1.5", "year"):
        with pytest.raises(ValueError, match=env):
            Settings.from_env({env: bad})


def test_observability_settings() -> None:
    s = Settings.from_env({})
    assert (s.metrics, s.metrics_public, s.metrics_token) == (True, False, None)
    assert (s.log_format, s.log_requests) == ("text", True)
    s = Settings.from_env({
        "LLM_MESH_METRICS": "0", "LLM_MESH_METRICS_PUBLIC": "yes",
        "LLM_MESH_METRICS_TOKEN": " tok ", "LLM_MESH_LOG_FORMAT": "JSON",
        "LLM_MESH_LOG_REQUESTS": "off",
    })  # fmt: skip
    assert (s.metrics, s.metrics_public, s.metrics_token) == (False, True, "tok")
    assert (s.log_format, s.log_requests) == ("json", False)
    assert "tok" not in repr(s)
    assert Settings.from_env({}, log_format="json").log_format == "json"
    with pytest.raises(ValueError, match="LLM_MESH_LOG_FORMAT"):
        Settings.from_env({"LLM_MESH_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="text or json"):
        Settings.from_env({}, log_format="yaml")
    with pytest.raises(ValueError, match="LLM_MESH_METRICS"):
        Settings.from_env({"LLM_MESH_METRICS": "maybe"})


def test_local_names_from_env() -> None:
    """LLM_MESH_LOCAL_NAMES: names the loopback-only endpoints accept in Host; none by
    default (loopback addresses and localhost only)."""
    assert Settings.from_env({}).local_names == ()
    s = Settings.from_env({"LLM_MESH_LOCAL_NAMES": " MyBox., mybox.lan "})
    assert s.local_names == ("mybox", "mybox.lan")
    with pytest.raises(ValueError, match="LLM_MESH_LOCAL_NAMES"):
        Settings.from_env({"LLM_MESH_LOCAL_NAMES": "http://mybox:8801"})


def test_several_registry_urls_from_env_flags_and_replace() -> None:
    from dataclasses import replace

    s = Settings.from_env({"LLM_MESH_REGISTRY_URL": "http://a:1/, http://b:2 ,,"})
    assert s.registry_url == "http://a:1" and s.registry_urls == ("http://a:1", "http://b:2")
    flag = Settings.from_env(
        {"LLM_MESH_REGISTRY_URL": "http://a:1,http://b:2"}, registry_url="http://c"
    )
    assert flag.registry_urls == ("http://c",)  # a flag's list replaces the env's
    assert replace(s, registry_url="http://x,http://y").registry_urls == ("http://x", "http://y")
    assert replace(s, registry_url="http://z").registry_urls == ("http://z",)
    assert Settings().registry_urls == ("http://127.0.0.1:8800",)


def test_redis_url_from_env() -> None:
    assert Settings.from_env({}).redis_url is None
    assert Settings.from_env({"LLM_MESH_REDIS_URL": " redis://r:6379/0 "}).redis_url == (
        "redis://r:6379/0"
    )


def test_settlement_settings_from_env() -> None:
    s = Settings.from_env({})
    assert (s.settlement, s.network_fee_bps, s.pool_daily_budget) == (True, 500, 100_000_000)
    s = Settings.from_env(
        {
            "LLM_MESH_SETTLEMENT": "off",
            "LLM_MESH_NETWORK_FEE_BPS": "0",
            "LLM_MESH_POOL_DAILY_BUDGET": "5_000_000",
        }
    )
    assert (s.settlement, s.network_fee_bps, s.pool_daily_budget) == (False, 0, 5_000_000)
    assert Settings.from_env({"LLM_MESH_NETWORK_FEE_BPS": "10000"}).network_fee_bps == 10_000
    assert (s.settle_lease, s.settle_lease_idle_s) == (4, 1.0)
    s = Settings.from_env({"LLM_MESH_SETTLE_LEASE": "0", "LLM_MESH_SETTLE_LEASE_IDLE_S": "0.5"})
    assert (s.settle_lease, s.settle_lease_idle_s) == (0, 0.5)
    for key, bad in (
        ("LLM_MESH_SETTLE_LEASE", "65"),
        ("LLM_MESH_SETTLE_LEASE", "-1"),
        ("LLM_MESH_SETTLE_LEASE_IDLE_S", "0"),
        ("LLM_MESH_NETWORK_FEE_BPS", "10001"),
        ("LLM_MESH_NETWORK_FEE_BPS", "-5"),
        ("LLM_MESH_NETWORK_FEE_BPS", "2.5"),
        ("LLM_MESH_POOL_DAILY_BUDGET", "lots"),
        ("LLM_MESH_SETTLEMENT", "maybe"),
    ):
        with pytest.raises(ValueError, match=key):
            Settings.from_env({key: bad})


def test_stream_floor_defaults_and_env() -> None:
    s = Settings.from_env({})
    assert (s.stream_min_rate, s.stream_grace_s) == (0.25, 60.0)
    s = Settings.from_env({"LLM_MESH_STREAM_MIN_RATE": "0", "LLM_MESH_STREAM_GRACE_S": "15.5"})
    assert (s.stream_min_rate, s.stream_grace_s) == (0.0, 15.5)  # 0: no floor


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "fast"])
def test_stream_floor_bad_values_raise(raw: str) -> None:
    with pytest.raises(ValueError, match="LLM_MESH_STREAM_MIN_RATE"):
        Settings.from_env({"LLM_MESH_STREAM_MIN_RATE": raw})


def test_the_previous_keys_window_is_more_than_0_and_at_most_a_day() -> None:
    """``LLM_MESH_PREVIOUS_KEY_WINDOW_S`` (rot42; the constant ``PREVIOUS_KEY_TOKENS_S``
    before): the default 15 minutes, a day at most, nothing that is not a positive number."""
    env = "LLM_MESH_PREVIOUS_KEY_WINDOW_S"
    assert Settings.from_env({}).previous_key_window_s == 900.0
    assert Settings.from_env({env: "60"}).previous_key_window_s == 60.0
    assert Settings.from_env({env: "86400"}).previous_key_window_s == 86400.0
    with pytest.raises(ValueError, match=rf"{env} must be more than 0 and at most 86400"):
        Settings.from_env({env: "86401"})
    for bad in ("0", "-5", "nan", "inf", "1e999"):  # the whole range said (newuser42: 0,
        # -5, nan, inf were "must be a positive number", 86401 the range)
        with pytest.raises(ValueError, match=rf"{env} must be more than 0 and at most 86400"):
            Settings.from_env({env: bad})
    with pytest.raises(ValueError, match=rf"{env} must be a number, got 'soon'"):
        Settings.from_env({env: "soon"})


def test_attack_a_per_minute_limit_past_its_top_or_in_other_digits_is_refused_at_start() -> None:
    """attack45: ``int()`` took any number, so ``LLM_MESH_EARNINGS_READS_PER_MIN`` of 1 and
    400 zeros started a registry whose every earnings read was a 500 (``float`` of the
    bucket's capacity overflowed), and Arabic-Indic digits read as 60."""
    from LLM_Mesh.config_env import LIMIT_TOP
    from LLM_Mesh.core.ratelimit import RateLimiter
    from LLM_Mesh.registry.valid_rates import EarningsReads

    key = "LLM_MESH_EARNINGS_READS_PER_MIN"
    top = Settings.from_env({key: str(LIMIT_TOP)}).earnings_reads_per_min
    assert top == LIMIT_TOP
    EarningsReads(RateLimiter(), 0.0, top).take("token")  # the top counts as any number
    assert Settings.from_env({key: "1_000"}).earnings_reads_per_min == 1000
    for bad in ("1" + "0" * 400, str(LIMIT_TOP + 1), "٦٠", "+5", "6e1", "-0"):
        with pytest.raises(ValueError, match=rf"{key} must be a whole number from 0 to"):
            Settings.from_env({key: bad})
    for name in ("LLM_MESH_ANONYMOUS_RPM", "LLM_MESH_LEDGER_READ_ROWS_PER_MIN"):
        with pytest.raises(ValueError, match=name):
            Settings.from_env({name: "9" * 40})


def test_attack_a_whole_number_of_thousands_of_digits_is_refused_naming_its_variable() -> None:
    """attack45: past Python's 4,300 digits ``int()`` said "Exceeds the limit", no name."""
    for key, field in (("LLM_MESH_UNPAID_KEEP_DAYS", "unpaid_keep_days"),
                       ("LLM_MESH_SETTLEMENT_KEEP_DAYS", "settlement_keep_days")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"{key} must be a whole number \(>= 0\)"):
            Settings.from_env({key: "9" * 4400})
        huge = 10**400  # taken: nothing is old enough (retention._back; held)
        assert getattr(Settings.from_env({key: str(huge)}), field) == huge

"""The CLI's tables say "(simulated)" wherever a model or a node is simulated."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from rich.console import Console

from LLM_Mesh.cli.render import models_table, nodes_table, print_status
from LLM_Mesh.core.catalog import CATALOG


def text(*renderables: Any) -> str:
    console = Console(width=250, record=True, color_system=None)
    for r in renderables:
        console.print(r)
    return console.export_text()


MODELS = [
    {"id": "gemma-3-270m", "available": True, "nodes": 1, "simulated": True},
    {"id": "mistral-7b", "available": True, "nodes": 2, "simulated": False},
    {"id": "code-llama-7b", "available": False, "nodes": 0, "simulated": False},
]


def test_models_table_labels_simulated_models() -> None:
    out = text(models_table(MODELS))
    assert "gemma-3-270m (simulated)" in out
    assert "mistral-7b (simulated)" not in out and "code-llama-7b (simulated)" not in out


def test_nodes_table_labels_simulated_nodes_and_models() -> None:
    nodes = [
        {"node_id": "sim-1", "simulated": True, "healthy": True,
         "models": [{"id": "gemma-3-270m", "simulated": True}]},
        {"node_id": "real-1", "simulated": False, "healthy": True,
         "models": [{"id": "mistral-7b", "simulated": False}]},
    ]  # fmt: skip
    out = text(nodes_table(nodes))
    assert "sim-1 (simulated)" in out and "gemma-3-270m (simulated)" in out
    assert "real-1 (simulated)" not in out and "mistral-7b (simulated)" not in out


def test_status_line_labels_simulated_models_up() -> None:
    console = Console(width=250, record=True, color_system=None)
    info = {
        "registry_url": "http://r",
        "models_available": ["gemma-3-270m", "mistral-7b"],
        "models_simulated": ["gemma-3-270m"],
        "models": {m["id"]: m for m in MODELS},
    }
    print_status(info, [], console)
    out = console.export_text()
    assert "models up: gemma-3-270m (simulated), mistral-7b" in out


def test_nodes_table_shows_region_and_the_prompt_declaration_not_an_address() -> None:
    nodes = [
        {"node_id": "n-1", "region": "eu-west", "keeps_no_prompts": True, "healthy": True,
         "models": [{"id": "gemma-3-270m"}]},
        {"node_id": "n-2", "keeps_no_prompts": False, "healthy": True, "models": []},
        {"node_id": "n-3", "healthy": False, "models": []},
    ]  # fmt: skip
    out = text(nodes_table(nodes))
    assert "eu-west · keeps no prompts" in out
    assert "may keep prompts" in out and "prompts: undeclared" in out
    assert "http" not in out and "- ·" not in out  # no placeholder where a URL was
    admin = text(nodes_table([{**nodes[0], "url": "http://203.0.113.7:8801"}]))
    assert "203.0.113.7:8801 · eu-west · keeps no prompts" in admin


def test_nodes_table_shows_trust_and_quarantines() -> None:
    from rich.console import Console

    from LLM_Mesh.cli.render import nodes_table

    console = Console(width=250, record=True, color_system=None)
    base = {"healthy": True, "models": [{"id": "gemma-3-270m"}]}
    console.print(
        nodes_table(
            [
                {
                    **base,
                    "node_id": "good",
                    "trust_score": 0.83,
                    "verifier": True,
                    "quarantined": [],
                },
                {
                    **base,
                    "node_id": "liar",
                    "trust_score": 0.0,
                    "quarantined": [{"model": "gemma-3-270m"}],
                },
                {**base, "node_id": "old-registry"},
            ]
        )
    )
    out = console.export_text()
    assert "0.83 verifier" in out
    assert "quarantined: gemma-3-270m" in out
    assert out.count("quarantined") == 1


def test_balance_table_shows_whole_micro_tokens() -> None:
    from rich.console import Console

    from LLM_Mesh.cli.render import balance_table

    def shown(data: dict[str, object]) -> str:
        console = Console(width=120, record=True)
        console.print(balance_table(data))
        return console.export_text()

    user = {"object": "balance", "account": "user:abc", "payer": "user", "balance": 1_234_567,
            "reserved": 135, "available": 1_234_432, "settlement": True}  # fmt: skip
    text = shown(user)
    assert "your balance" in text and "1,234,567" in text and "1,234,432" in text
    # each amount with its unit (found 2026-12-07, newuser44: the table, headerless, said none)
    assert "1,234,567 µNT" in text and "135 µNT" in text and "1,234,432 µNT" in text
    assert "user:abc" in text and "daily budget" not in text
    pool = {**user, "account": "pool", "payer": "pool", "daily_budget": 100_000_000,
            "settlement": False}  # fmt: skip
    text = shown(pool)
    assert "community pool" in text and "100,000,000 µNT" in text and "nothing is charged" in text


# --- strings a node or a registry chose: no terminal escapes, no Rich markup ---------------

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZWNobyBoaQ==\x07\x9b31m\u202e"


def hostile_node() -> dict[str, Any]:
    return {
        "node_id": "n-1[/]", "healthy": False, "keeps_no_prompts": False,
        "state": f"online{ESCAPES}",
        "region": f"eu{ESCAPES}[green] · keeps no prompts[/green]",
        "url": "http://[link=http://evil.example]203.0.113.7[/link]:8801",
        "models": [{"id": f"gemma[/]{ESCAPES}[link=http://evil.example]x[/link]"}],
        "trust_score": 0.1, "quarantined": [{"model": "m[/]\x1b[0m"}],
    }  # fmt: skip


def raw(*renderables: Any) -> str:
    """What a terminal would receive (Rich's own styling included)."""
    console = Console(width=250, record=True, force_terminal=True, color_system="truecolor")
    with console.capture() as cap:
        for r in renderables:
            console.print(r)
    return cap.get()


def test_node_chosen_strings_reach_the_terminal_without_escapes_or_markup() -> None:
    # before: "[/]" raised MarkupError (llm-mesh status failed for everyone), the ESC
    # sequences reached the terminal, "[green]" forged the prompt declaration
    models = [{"id": f"custom[/]{ESCAPES}", "quantization": "q[/]", "specialties": ["[b]x"]}]
    out = raw(nodes_table([hostile_node()]), models_table(models))
    for seq in ("\x1b[2J", "\x1b]0;", "\x1b]52;", "\x9b", "\u202e", "\x07"):
        assert seq not in out
    assert "evil.example" not in out.replace("[link=http://evil.example]", "")  # no hyperlink
    plain = text(nodes_table([hostile_node()]))
    assert "[green] · keeps no" in plain and "prompts[/green]" in plain  # shown as text
    assert "may keep prompts" in plain
    assert "gemma[/]" in plain and "n-1[/]" in plain and "m[/]" in plain


def test_status_and_metrics_lines_escape_what_the_registry_sent() -> None:
    from LLM_Mesh.cli.render import metrics_line, metrics_table

    console = Console(width=250, record=True, force_terminal=True)
    info = {"models_available": [f"m[/]{ESCAPES}"], "models": {}}
    with console.capture() as cap:
        print_status(info, [hostile_node()], console)
        mesh = {"node_id": "n[/]\x1b[2J", "model": "m\x1b]0;t\x07", "engine": "[red]real[/]"}
        console.print(metrics_line(mesh))
        console.print(metrics_table(mesh))
    out = cap.get()
    assert "\x1b[2J" not in out and "\x1b]0;" not in out
    assert "[red]real[/]" in out  # the node's engine name, shown as text


async def test_a_streamed_answer_is_printed_without_terminal_escapes(monkeypatch: Any) -> None:
    from LLM_Mesh.cli import demo

    class FakeClient:
        def __init__(self, *a: Any, **kw: Any) -> None: ...

        async def __aenter__(self) -> FakeClient:
            return self

        async def __aexit__(self, *a: Any) -> None: ...

        async def stream(self, path: str, body: Any) -> Any:
            yield {"choices": [{"delta": {"content": f"Hello{ESCAPES}\n\tworld"}}]}
            yield {"choices": [], "mesh": {"node_id": "n"}}

    monkeypatch.setattr(demo, "MeshClient", FakeClient)
    console = Console(width=250, record=True, force_terminal=True)
    with console.capture() as cap:
        text_, _, _, _ = await demo.stream_request(console, "http://r", "/v1/chat/completions", {})
    out = cap.get()
    assert "Hello" in out and "world" in out
    for seq in ("\x1b[2J", "\x1b]0;", "\x1b]52;", "\x9b", "\u202e", "\x07"):
        assert seq not in out
    assert ESCAPES in text_  # what the caller gets back is the answer as sent


def test_status_and_models_tables_lose_no_column_at_80_columns() -> None:
    """Found 2026-12-02: at 80 columns (a default terminal, and ``llm-mesh status`` or
    ``models`` piped or redirected) rich cropped the tables' right edge: the catalog's
    "up" column read "ye", the nodes' trust column "0". Every line must end in a border."""
    catalog = [
        {**dataclasses.asdict(m), "available": m.id == "gemma-3-270m", "nodes": 1,
         "simulated": m.id == "gemma-3-270m"}
        for m in CATALOG
    ]  # fmt: skip
    node = {
        "node_id": "node-qlksu6anumfqzmgyeymeasricj", "healthy": True, "health_score": 1.0,
        "keeps_no_prompts": True, "models": [{"id": "gemma-3-270m"}], "ttft_ms_ewma": 276,
        "latency_ms_ewma": 3042, "requests": 2, "failures": 0, "trust_score": 0.5,
    }  # fmt: skip
    for width in (80, 100):
        console = Console(width=width, record=True, color_system=None)
        console.print(models_table(catalog, width))
        console.print(nodes_table([node]))
        out = console.export_text()
        rows = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
        assert rows and all(line.rstrip()[-1] in "┓┃┩│┘" for line in rows), out
        assert "1 node" in out and "0.50" in out
        # and no model id is broken over two lines (found the same day: without the columns'
        # minimum widths `gemma-3-270m` read `gemma-3-2` / `70m`, not to be copied or grepped)
        assert all(m.id in out for m in CATALOG), out
        assert "(simulated)" in out and "40,000" in out and "80,000" in out, out  # no figure cut


def test_status_keeps_node_ids_whole_at_80_and_100_columns() -> None:
    """Found 2026-12-03: ``llm-mesh status`` at 80 columns (a default terminal, piped) folded
    each node id over four lines (``node-agvrv`` / ``x2sy4wsbqc`` / ...) and its models over
    two (``gemma-3-2`` / ``70m``); at 100 the ids still broke. The id is what an admin copies
    into ``llm-mesh registry nodes trust|clear|revoke NODE_ID``, or greps for."""
    ids = ["node-qlksu6anumfqzmgyeymeasricj", "node-agvrvx2sy4wsbqcjzhqn23ykgo"]
    nodes = [
        {"node_id": ids[0], "healthy": True, "health_score": 1.0, "keeps_no_prompts": True,
         "models": [{"id": "gemma-3-270m"}, {"id": "deepseek-llm-67b-chat"}],
         "ttft_ms_ewma": 276, "latency_ms_ewma": 3042, "requests": 2, "failures": 0,
         "trust_score": 0.5, "region": "eu-west"},
        {"node_id": ids[1], "healthy": False, "state": "draining", "keeps_no_prompts": True,
         "models": [{"id": "code-llama-7b", "simulated": True}], "requests": 0, "failures": 0,
         "trust_score": 0.5},
    ]  # fmt: skip
    info = {"registry_url": "http://127.0.0.1:8800", "nodes_total": 2, "nodes_healthy": 1}
    for width in (80, 100, 160):
        console = Console(width=width, record=True, color_system=None)
        print_status(info, nodes, console)
        out = console.export_text()
        rows = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
        assert rows and all(line.rstrip()[-1] in "┓┃┩│┘" for line in rows), out  # no crop
        for whole in (*ids, "gemma-3-270m", "deepseek-llm-67b-chat", "draining", "0.50"):
            assert whole in out, (width, whole, out)


def test_models_table_cuts_no_word_at_80_columns() -> None:
    """Found 2026-12-04: ``llm-mesh models`` at 80 columns read "gener…", "reaso…",
    "pytho…" for the specialties and "conte…" for the context header."""
    catalog = [{**dataclasses.asdict(m), "available": False} for m in CATALOG]
    for width in (80, 100, 160):
        console = Console(width=width, record=True, color_system=None)
        console.print(models_table(catalog, width))
        out = console.export_text()
        assert "…" not in out, out
        assert "context" in out
        words = {w for m in CATALOG for w in m.specialties}
        assert all(w in out for w in words), out


@pytest.mark.parametrize("width", range(80, 161, 4))
def test_models_table_breaks_no_word_beside_a_simulated_label(width: int) -> None:
    """Found 2026-12-05 (``llm-mesh models`` of ``llm-mesh up --engine sim``, 100 columns):
    with "gemma-3-270m (simulated)" in the model column, the specialties column read
    "administrat" / "ive" from 100 to 104 columns; given that word's width, rich cropped the
    table's right edge instead. Now the specialties go under the ids where they do not fit."""
    catalog = [
        {**dataclasses.asdict(m), "available": m.id == "gemma-3-270m", "nodes": 1,
         "simulated": m.id == "gemma-3-270m"}
        for m in CATALOG
    ]  # fmt: skip
    console = Console(width=width, record=True, color_system=None)
    console.print(models_table(catalog, width))
    out = console.export_text()
    rows = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert rows and all(line.rstrip()[-1] in "┓┃┩│┘" for line in rows), out  # no crop
    words = re.findall(r"[\w.-]+", out)
    for m in CATALOG:
        assert m.id in words and all(w in words for w in m.specialties), (width, out)
    assert "(simulated)" in out and "…" not in out, out


def test_a_revoked_node_reads_revoked_not_down_offline() -> None:
    """Found 2026-12-04: ``llm-mesh status`` showed a revoked node as "down offline"."""
    node = {"node_id": "node-a", "healthy": False, "state": "offline", "revoked": True}
    for width in (80, None):
        console = Console(width=120, record=True, color_system=None)
        console.print(nodes_table([node], width))
        out = console.export_text()
        assert "revoked" in out and "offline" not in out and "down" not in out, out


def test_a_paused_or_draining_node_reads_as_its_state_not_down() -> None:
    """Found 2026-12-07 (newuser40): after ``llm-mesh node pause`` ``llm-mesh status`` showed
    the node as "down paused" in red, as it shows a node failing its health checks; an
    operator's pause or drain is no outage. A node failing them still reads "down"."""
    for state in ("paused", "draining"):
        node = {"node_id": "node-a", "healthy": False, "state": state, "revoked": False}
        for width in (80, None):
            console = Console(width=120, record=True, color_system=None)
            console.print(nodes_table([node], width))
            out = console.export_text()
            assert state in out and "down" not in out, out
    failing = {"node_id": "node-a", "healthy": False, "state": "online", "revoked": False}
    console = Console(width=120, record=True, color_system=None)
    console.print(nodes_table([failing], 80))
    assert "down" in console.export_text()
    # paused, then silent past the default heartbeat expiry (30 s): down, as before newuser40
    for age, down in ((29.0, False), (30.0, True), (3600.0, True), (None, False)):
        quiet = {"node_id": "node-a", "healthy": False, "state": "paused",
                 "last_heartbeat_age_s": age}  # fmt: skip
        console = Console(width=120, record=True, color_system=None)
        console.print(nodes_table([quiet], 80))
        out = console.export_text()
        assert ("down" in out) is down and "paused" in out, (age, out)


def test_a_paused_node_is_down_as_its_registry_says_not_by_the_default_expiry() -> None:
    """Found 2026-12-07: a paused node was judged silent by the default heartbeat expiry
    (30 s) whatever the registry's own: at a registry with a 120 s expiry, heard 60 s ago,
    "down paused"; at one with 10 s, silent for 20 s, "paused". The listing's ``silent``
    (the registry's word) decides; without it (an older registry) the default, as before."""
    for age, silent in ((60.0, False), (20.0, True), (None, True), (3600.0, False)):
        node = {"node_id": "node-a", "healthy": False, "state": "paused",
                "last_heartbeat_age_s": age, "silent": silent}  # fmt: skip
        for width in (80, None):
            console = Console(width=120, record=True, color_system=None)
            console.print(nodes_table([node], width))
            out = console.export_text()
            assert ("down" in out) is silent and "paused" in out, (age, silent, out)
    # not a bool (a hostile or broken registry): read as not said, the default expiry
    odd = {"node_id": "node-a", "healthy": False, "state": "paused",
           "last_heartbeat_age_s": 60.0, "silent": "no"}  # fmt: skip
    console = Console(width=120, record=True, color_system=None)
    console.print(nodes_table([odd], 80))
    assert "down" in console.export_text()


def test_a_simulated_node_leaves_the_other_columns_whole_at_80_columns() -> None:
    """Found 2026-12-04: "(simulated)" beside a node id left the load, time and trust
    columns 2-3 characters each at 80 columns ("lo…", "t…", "0…")."""
    node = {
        "node_id": "node-srnaouytbovhdwycmru7ioondd", "simulated": True, "healthy": True,
        "health_score": 1.0, "models": [{"id": "mistral-7b", "simulated": True}],
        "keeps_no_prompts": True, "requests": 1, "failures": 0, "trust_score": 0.5,
    }  # fmt: skip
    console = Console(width=80, record=True, color_system=None)
    console.print(nodes_table([node], 80))
    out = console.export_text()
    assert "…" not in out, out
    for whole in ("node-srnaouytbovhdwycmru7ioondd", "(simulated)", "0.50", "load", "trust"):
        assert whole in out, out


@pytest.mark.parametrize("width", [80, 100])
def test_a_verifiers_label_is_whole_at_80_columns(width: int) -> None:
    """Found 2026-12-07 (newuser44): `llm-mesh status` at 80 columns read "1.00 verif…" for
    the node the admin marked with `registry nodes trust`."""
    node = {
        "node_id": "node-64jfd33nduq3pk5bhfenbgvksi", "healthy": True, "health_score": 1.0,
        "models": [{"id": "gemma-3-270m"}], "keeps_no_prompts": True, "requests": 6,
        "failures": 0, "trust_score": 1.0, "verifier": True, "ttft_ms_ewma": 494.0,
        "latency_ms_ewma": 10_000.0, "in_flight": 1, "max_concurrency": 1,
    }  # fmt: skip
    console = Console(width=width, record=True, color_system=None)
    console.print(nodes_table([node], width))
    out = console.export_text()
    assert "…" not in out and "verifier" in out and "1.00" in out, out


def test_the_status_line_prints_its_figures_and_url_literally() -> None:
    """Found 2026-12-04: the status line put the registry URL and node counts into Rich
    markup as given (a ``[/]`` there ended ``llm-mesh status`` with a MarkupError)."""
    console = Console(width=200, record=True, color_system=None)
    info = {"registry_url": "http://x[/]y", "nodes_total": "[red]9[/red]", "nodes_healthy": 1}
    print_status(info, [], console)
    out = console.export_text()
    assert "http://x[/]y" in out and "1/- nodes healthy" in out, out


@pytest.mark.parametrize("odd", [None, "x", 5, {"id": "m"}, [None, 5, {"no": "id"}]])
def test_a_nodes_odd_models_or_quarantines_print_without_a_traceback(odd: object) -> None:
    """Found 2026-12-04: a registry's node whose ``models`` or ``quarantined`` was not a
    list of objects (null, a string, a number) ended ``llm-mesh status`` with a TypeError."""
    node = {"node_id": "node-a", "healthy": True, "models": odd, "quarantined": odd,
            "trust_score": 0.5}  # fmt: skip
    for width in (80, None):
        console = Console(width=120, record=True, color_system=None)
        console.print(nodes_table([node], width))
        assert "node-a" in console.export_text()


@pytest.mark.parametrize("width", [80, 100, 160])
def test_status_keeps_each_time_with_its_unit_at_80_columns(width: int) -> None:
    """found 2026-12-04 (``llm-mesh status`` of ``llm-mesh up --engine sim``, 80 columns):
    the time column read ``25 ms`` / ``/ 856`` / ``ms``: a figure parted from its unit."""
    node = {
        "node_id": "node-fqzupj4g76v5uw673uy5nfmly5", "simulated": True, "healthy": True,
        "health_score": 1.0, "models": [{"id": "gemma-3-270m", "simulated": True}],
        "keeps_no_prompts": True, "in_flight": 12, "max_concurrency": 16, "queued": 3,
        "ttft_ms_ewma": 276, "latency_ms_ewma": 3042, "requests": 1234, "failures": 5,
        "trust_score": 0.5,
    }  # fmt: skip
    console = Console(width=width, record=True, color_system=None)
    console.print(nodes_table([node], width))
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= width, out
    for whole in ("276 ms", "3042 ms", "12/16", "1234", "0.50", "node-fqzupj4g76v5uw673uy5nfmly5"):
        assert whole in out, (whole, out)


@pytest.mark.parametrize("width", [80, 100, 160])
def test_status_keeps_a_slow_nodes_times_with_their_units(width: int) -> None:
    """Found 2026-12-05 (``llm-mesh status`` at 80 columns after a real-model request hit the
    deadline): the time column read ``107168`` / ``ms``, a figure parted from its unit."""
    node = {
        "node_id": "node-vpnbxstgnxn5c4bkxd37kqugqg", "healthy": True, "health_score": 0.0,
        "models": [{"id": "gemma-3-270m"}], "keeps_no_prompts": True, "in_flight": 0,
        "max_concurrency": 1, "queued": 0, "ttft_ms_ewma": 107168.4,
        "latency_ms_ewma": 9999.4, "requests": 4, "failures": 1, "trust_score": 0.0,
    }  # fmt: skip
    console = Console(width=width, record=True, color_system=None)
    console.print(nodes_table([node], width))
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= width, out
    assert re.search(r"\b(107168 ms|107 s)\b", out) and "9999 ms" in out, out


def test_the_metrics_line_keeps_each_figure_with_its_label_at_any_width() -> None:
    """Found 2026-12-05: in a narrow terminal `llm-mesh ask`'s line wrapped between a label
    and its figure ("total" / "986 ms"); it now breaks only between the facts."""
    from LLM_Mesh.cli.render import metrics_line

    mesh = {"node_id": "node-" + "a" * 26, "model": "gemma-3-270m", "simulated": True,
            "ttft_ms": 25.0, "latency_ms": 986.0, "tokens_per_s": 43.2,
            "completion_tokens": 42, "cost": 1234}  # fmt: skip
    facts = ["node node-" + "a" * 26, "model gemma-3-270m", "SIMULATED engine", "ttft 25 ms",
             "total 986 ms", "43.2 tok/s", "42 tokens", "cost 1,234 µNT",
             "(fallback from mistral-7b)"]  # fmt: skip
    for width in range(40, 160):
        console = Console(width=width, record=True)
        line = metrics_line(mesh, width=width, note="(fallback from mistral-7b)")
        console.print(f"[dim]{line}[/]")
        lines = console.export_text().splitlines()
        for fact in facts:
            assert any(fact in row for row in lines), (width, fact, lines)
        assert all(len(row) <= width for row in lines)
        assert all(row.strip() not in ("", "·") for row in lines), (width, lines)  # no "·" alone
    # without a width: one line, as before (piped output, tests)
    assert "\n" not in metrics_line(mesh)


def test_the_up_column_says_how_many_nodes_in_words() -> None:
    """Found 2026-12-05 (newuser31): ``llm-mesh models`` and ``status`` said "yes 1n" (what
    "n" stands for said nowhere): the count of nodes is said in words, under "yes", and the
    table still fits 80 columns."""
    catalog = [
        {**dataclasses.asdict(m), "available": m.id in ("gemma-3-270m", "mistral-7b"),
         "nodes": 1 if m.id == "gemma-3-270m" else 12}
        for m in CATALOG
    ]  # fmt: skip
    for width in (80, 140):
        console = Console(width=width, record=True, color_system=None)
        console.print(models_table(catalog, width))
        out = console.export_text()
        assert "1n" not in out and "12n" not in out, out
        lines = out.splitlines()
        at = next(i for i, line in enumerate(lines) if "gemma-3-270m" in line)
        assert "yes" in lines[at] and "1 node " in lines[at + 1], out
        at = next(i for i, line in enumerate(lines) if "mistral-7b" in line)
        assert "yes" in lines[at] and "12 nodes" in lines[at + 1], out
        assert max(len(line.rstrip()) for line in lines) <= width, out


def test_the_metrics_line_says_1_token_not_1_tokens() -> None:
    """Found 2026-12-06 (newuser33: ``llm-mesh ask --chat -`` answered " Hello"): the line
    said ``1 tokens``."""
    from LLM_Mesh.cli.render import metrics_line

    mesh = {"node_id": "node-a", "model": "gemma-3-270m", "ttft_ms": 5.0, "latency_ms": 9.0}
    assert " · 1 token · " in metrics_line({**mesh, "completion_tokens": 1})
    assert " · 2 tokens · " in metrics_line({**mesh, "completion_tokens": 2})
    assert " · 1200 tokens · " in metrics_line({**mesh, "completion_tokens": 1200})


def test_an_unsettled_answers_cost_is_said_not_charged() -> None:
    """Found 2026-12-07 (money41b): with settlement off `llm-mesh ask` said "cost 120 µNT"
    though nothing is charged; the receipt says so (``settled: false``)."""
    from LLM_Mesh.cli.render import metrics_line, metrics_table

    mesh = {"node_id": "n1", "model": "m", "completion_tokens": 3, "cost": 120,
            "receipt": {"settled": False}}  # fmt: skip
    said = "cost 120 µNT · (not charged: this registry does not settle)"
    assert said in metrics_line(mesh)
    console = Console(width=200, record=True)
    console.print(metrics_table(mesh))
    assert "120 µNT (not charged: this registry does not settle)" in console.export_text()
    for settled in ({"settled": True}, {}, "x", None):
        assert "not charged" not in metrics_line({**mesh, "receipt": settled})

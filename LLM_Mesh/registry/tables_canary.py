"""The store's quality-control tables (``registry/store_canary.py``, ``registry/quality.py``):
the canary verifiers' marks, the canary's tallies and quarantines, its evidence across probes.

Out of ``tables.py`` (which re-exports them) to keep that under 600 lines (verifier44).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table

from LLM_Mesh.registry.tables_base import UTCDateTime, metadata

__all__ = ["canary_departures", "canary_status", "canary_verifier_models", "canary_verifiers"]

#: The canary verifiers' marks (migration 0036; ``core/verifier_marks.py``): one row a model
#: file a node is the probes' reference for, model id and the sha256 it declared when marked;
#: ``marked_at`` names the mark (a reference cached under an earlier mark of the same file, one
#: unmarked since, is not used: ``registry/canary.py``). Not in ``canary_verifiers``, where the
#: code before 0034 reads every row as the whole node's mark.
canary_verifier_models = Table(
    "canary_verifier_models",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("marked_at", UTCDateTime(), nullable=False),
)

#: Marks written by code before 0036 (migration 0009): the code before 0034 reads each row as
#: a verifier for every model the node declares; 0034 added ``models`` (id -> sha256), which
#: 0036 moved to ``canary_verifier_models``. What is left here (marks made before 0034, or by
#: a replica not yet upgraded) covers no model from 0036 on (``SqlCanary.list_verifiers``);
#: marking or unmarking the node deletes its row. Kept, ``models`` too, for those replicas.
canary_verifiers = Table(
    "canary_verifiers",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("trusted_at", UTCDateTime(), nullable=False),
    Column("models", JSON(), nullable=False, server_default="{}"),
)

#: Migration 0009 (``registry/quality.py``): per node and model the canary's tally and
#: quarantine (set by a failed probe, cleared by ``nodes clear``).
canary_status = Table(
    "canary_status",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("passed", Integer(), nullable=False),
    Column("failed", Integer(), nullable=False),
    Column("last_probe_at", UTCDateTime(), nullable=True),
    Column("quarantined_at", UTCDateTime(), nullable=True),
    Column("reason", String(512), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_canary_status_updated_at", "updated_at"),
)

#: The canary's evidence across sampled probes (``core/canary_departures.py``), shared by
#: the replicas on one database and kept over a restart (migration 0030;
#: ``registry/canary_departures_sync.py``): one CUSUM tally a row, keyed (node, model,
#: kind, slice), ``""`` where the tally has none; ``written`` the wall clock of its last
#: batch (the bound drops the lowest score first, then the least recently written).
canary_departures = Table(
    "canary_departures",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("slice", String(32), primary_key=True),
    Column("score", Float(), nullable=False),
    Column("probes", BigInteger(), nullable=False),
    Column("departures", BigInteger(), nullable=False),
    Column("at_first", BigInteger(), nullable=False),
    Column("written", Float(), nullable=False),
    Index("ix_canary_departures_score", "score"),
)

"""The transport rule a node's registration meets (``core/tls.py``), as the registry's
answers: https off loopback unless the registry allows plain-HTTP nodes; none under
``--require-tls``; a certificate fingerprint only with https (``api.register_node``)."""

from __future__ import annotations

from LLM_Mesh.core.schemas import NodeRegistration
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.errors import Forbidden, InvalidRequest


def check_transport(
    reg: NodeRegistration, transport: NodeTransport, addresses: tuple[str, ...] | None = None
) -> None:
    """The transport rule (``core/tls.py``): https off loopback unless the registry allows
    plain-HTTP nodes; none under ``--require-tls``; a certificate fingerprint only with https."""
    reason = transport.refusal(reg.url, reg.tls_fingerprint, addresses)
    if reason == "plain_http":
        raise Forbidden(
            "this registry requires TLS: the node's url must be https:// (llm-mesh node tls "
            "init, then node start --tls-cert/--tls-key)",
            param="url",
            reason="tls_required",
        )
    if reason == "plain_http_remote":
        raise Forbidden(PLAIN_HTTP_REMOTE, param="url", reason="plain_http_remote")
    if reason is not None:
        raise InvalidRequest(
            "tls_fingerprint is given but the url is not https://", param="tls_fingerprint"
        )


#: the 403 of a plain-HTTP node on another machine: what each side may do about it
PLAIN_HTTP_REMOTE = (
    "this node's url is http:// on another machine than the registry: prompts and answers "
    "would cross the network unencrypted, so the registry refuses it. On the node, serve "
    "https: `llm-mesh node tls init --host <the name or IP the registry reaches it at>`, "
    "then `llm-mesh node start --tls-cert <cert> --tls-key <key>` as it prints (an https:// "
    "public_url in node.toml, if set). Or, on a private network, the registry's operator "
    "may accept it: `llm-mesh registry serve --allow-private-node <its url>`, or every "
    "node with --allow-plain-http-nodes (LLM_MESH_ALLOW_PLAIN_HTTP_NODES=1)."
)

#!/usr/bin/env bash
# Join the LLM Mesh as a node operator: from nothing to a node serving the network.
#
#   ./setup-node-operator.sh                 # asks before each choice
#   ./setup-node-operator.sh --yes --registry https://mesh.example.org --public-url https://203.0.113.7:8801
#
# Steps: check prerequisites -> the registry and port (a taken port stops a run that starts
# the node here, before the minutes below) -> venv -> install llm-mesh + llama-cpp-python ->
# detect hardware -> choose models that fit -> fetch model files ->
# write $LLM_MESH_HOME/node.toml (atomically; unchanged config is not rewritten)
# -> a registry on another machine: the node serves https (llm-mesh node tls init)
# -> start the node (foreground, or a systemd user service with --service).
# Running it again changes nothing that is already right.
set -euo pipefail

PROG="setup-node-operator"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LLM_MESH_HOME="${LLM_MESH_HOME:-$HOME/.llm-mesh}"
VENV=""
YES=0
DRY_RUN=0
NO_START=0
SERVICE=0
SKIP_INSTALL=0
REGISTRY=""
MODELS=""
PORT=""
REGION=""
PUBLIC_URL=""
GPU="cpu"
ENGINE=""
REGISTRY_KEY=""
ALLOW_HTTP_FIRST_USE=0
PLAIN_HTTP=0
MIN_DISK_GB=2

usage() {
  cat <<EOF
Usage: $0 [options]

Set up this machine as an LLM Mesh node and start it.

Options:
  --yes               accept the proposed defaults; never prompt
  --registry URL      registry to join (default \$LLM_MESH_REGISTRY_URL, else node.toml's, else http://127.0.0.1:8800)
  --models LIST       comma-separated catalog model ids to host (default: node.toml's, else proposed from hardware)
  --port N            port the node listens on (default: node.toml's, else 8801)
  --region NAME       region label for routing (e.g. eu-west)
  --public-url URL    URL the registry and gateway reach this node at (with a registry on
                      another machine an http:// one is served as https://)
  --plain-http        with a registry on another machine, serve plain http anyway (no TLS
                      certificate): only if its operator runs registry serve
                      --allow-plain-http-nodes (a lab; else it refuses the node, 403), or
                      behind your own TLS proxy (--public-url https://...)
  --registry-public-key KEY
                      pin the gateway's key (kept in node.toml): on the registry's machine,
                      llm-mesh registry public-key prints it; needed for a plain-http
                      registry on another machine, unless --allow-http-first-use
  --allow-http-first-use
                      without that key, trust the key of the plain-http registry's first
                      answer (anyone on the network path could answer: a trusted LAN only)
  --gpu cpu|cuda      build llama-cpp-python for CPU (default) or CUDA
  --engine NAME       llama-cpp (default), openai or sim; without it an existing node.toml's engine is kept
  --venv DIR          virtual environment to create or reuse (default \$LLM_MESH_HOME/venv)
  --service           install and enable a systemd user service instead of running in the foreground
  --skip-install      use the venv as it is (llm-mesh already installed there)
  --no-start          set everything up but do not start the node
  --dry-run           print what would be done; change nothing
  -h, --help          show this help

Environment: LLM_MESH_HOME (default ~/.llm-mesh), LLM_MESH_REGISTRY_URL, PYTHON,
LLM_MESH_OPERATOR_TOKEN (the credential the registry's admin gave you; kept as operator_token in node.toml).
EOF
}

say() { echo "$PROG: $*"; }
die() {
  echo "$PROG: error: $1" >&2
  if [ $# -gt 1 ]; then echo "$PROG: how to fix: $2" >&2; fi
  exit 1
}
need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value" "see $0 --help"; fi
}
run() {
  if [ "$DRY_RUN" = 1 ]; then say "would run: $*"; else "$@"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --yes|-y) YES=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --no-start) NO_START=1 ;;
    --service) SERVICE=1 ;;
    --skip-install) SKIP_INSTALL=1 ;;
    --registry) need_value "$@"; REGISTRY="$2"; shift ;;
    --models) need_value "$@"; MODELS="$2"; shift ;;
    --port) need_value "$@"; PORT="$2"; shift ;;
    --region) need_value "$@"; REGION="$2"; shift ;;
    --public-url) need_value "$@"; PUBLIC_URL="$2"; shift ;;
    --registry-public-key) need_value "$@"; REGISTRY_KEY="$2"; shift ;;
    --allow-http-first-use) ALLOW_HTTP_FIRST_USE=1 ;;
    --plain-http) PLAIN_HTTP=1 ;;
    --gpu) need_value "$@"; GPU="$2"; shift ;;
    --engine) need_value "$@"; ENGINE="$2"; shift ;;
    --venv) need_value "$@"; VENV="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1'" "run $0 --help for the options" ;;
  esac
  shift
done

case "${LLM_MESH_ALLOW_HTTP_FIRST_USE:-}" in 1|[Tt][Rr][Uu][Ee]|[Yy][Ee][Ss]|[Oo][Nn]) ALLOW_HTTP_FIRST_USE=1 ;; esac
case "$GPU" in cpu|cuda) ;; *) die "--gpu must be cpu or cuda, not '$GPU'" "use --gpu cpu or --gpu cuda" ;; esac
case "${ENGINE:-llama-cpp}" in llama-cpp|openai|sim) ;; *) die "--engine must be llama-cpp, openai or sim" "see $0 --help" ;; esac
if [ -n "$PORT" ] && ! [[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ]]; then
  die "--port must be a number from 1 to 65535, not '$PORT'" "e.g. --port 8801"
fi
for url in "$REGISTRY" "$PUBLIC_URL"; do
  if [ -n "$url" ] && ! [[ "$url" =~ ^https?:// ]]; then
    die "'$url' is not an http(s) URL" "write it as http://HOST:PORT"
  fi
done
if [ -n "$MODELS" ] && ! [[ "$MODELS" =~ ^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$ ]]; then
  die "--models must be comma-separated model ids, not '$MODELS'" "e.g. --models gemma-3-270m,mistral-7b"
fi
# every llm-mesh command reads the CA file it is given (a bad one is one error line, ux34):
# said here, before anything is made, not as "could not make the node key" later
if [ -n "${LLM_MESH_REGISTRY_CA:-}" ] && ! [ -f "$LLM_MESH_REGISTRY_CA" ]; then
  die "LLM_MESH_REGISTRY_CA=$LLM_MESH_REGISTRY_CA is not a file" "point it at the registry's CA certificate (PEM)"
fi
# the CA, absolute: kept as registry_ca in node.toml (`earnings` and a `node start` from
# another shell trust it with no --registry-ca: found 2026-12-06, cli36) and named by the
# start command (found 2026-12-06, newuser35b: CERTIFICATE_VERIFY_FAILED, retried for ever)
CA_ABS=""
if [ -n "${LLM_MESH_REGISTRY_CA:-}" ]; then
  CA_ABS="$(cd "$(dirname "$LLM_MESH_REGISTRY_CA")" && pwd)/$(basename "$LLM_MESH_REGISTRY_CA")"
fi

INTERACTIVE=0
if [ "$YES" = 0 ] && [ -t 0 ] && [ "$DRY_RUN" = 0 ]; then INTERACTIVE=1; fi
ask() { # ask PROMPT DEFAULT [SHOWN] -> echoes the answer, else DEFAULT (SHOWN: what it amounts to)
  local answer=""
  if [ "$INTERACTIVE" = 1 ]; then
    read -r -p "$1 [${3:-$2}]: " answer || true
  fi
  echo "${answer:-$2}"
}

# Absolute paths: the start command it prints and the --service unit it writes run from any
# folder (systemd takes no relative ExecStart=), found 2026-12-06 (newuser33).
absolute() {
  case "$1" in
    /*) echo "$1" ;;
    *) if [ -d "$1" ]; then (CDPATH="" cd -- "$1" && pwd); else echo "$PWD/${1#./}"; fi ;;
  esac
}
LLM_MESH_HOME="$(absolute "$LLM_MESH_HOME")"
VENV="$(absolute "${VENV:-$LLM_MESH_HOME/venv}")"
CONFIG="$LLM_MESH_HOME/node.toml"
# Without --engine, an existing node.toml's engine holds (a sim node needs no llama.cpp, no files).
if [ -z "$ENGINE" ] && [ -f "$CONFIG" ]; then
  ENGINE="$(sed -n 's/^engine *= *"\([a-z-]*\)".*$/\1/p' "$CONFIG" | head -n 1)"
  case "${ENGINE:-llama-cpp}" in
    llama-cpp|openai|sim) ;;
    *) die "$CONFIG names an unknown engine '$ENGINE'" "fix it, or pass --engine llama-cpp|openai|sim" ;;
  esac
  if [ -n "$ENGINE" ]; then say "engine: $ENGINE (from $CONFIG)"; fi
fi
REPO=""
if [ -f "$SCRIPT_DIR/pyproject.toml" ] && grep -q '^name = "llm-mesh"' "$SCRIPT_DIR/pyproject.toml"; then
  REPO="$SCRIPT_DIR"
fi
[ "$DRY_RUN" = 1 ] && say "dry run: nothing will be changed"

# --- 1. prerequisites -------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ]; then PYTHON="$VENV/bin/python"; fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON found" "install Python 3.10 or newer (e.g. apt-get install python3 python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PYTHON" -V 2>&1) is too old; llm-mesh needs Python 3.10 or newer" "install python3.10+ and run again with PYTHON=/path/to/python3.10"
say "python: $("$PYTHON" -V 2>&1)"

has_llama() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; }
need_tool() { # need_tool PROBLEM FIX: stop, or on a dry run say where the real run would stop
  if [ "$DRY_RUN" = 1 ]; then say "a real run would stop here: $1; fix: $2"; else die "$1" "$2"; fi
}
if [ "${ENGINE:-llama-cpp}" = llama-cpp ] && [ "$SKIP_INSTALL" = 0 ] && ! has_llama; then
  command -v cmake >/dev/null 2>&1 \
    || need_tool "cmake is missing (needed to build llama-cpp-python)" "apt-get install cmake (or: pip install cmake)"
  { command -v cc || command -v gcc || command -v clang; } >/dev/null 2>&1 \
    || need_tool "no C compiler (needed to build llama-cpp-python)" "apt-get install build-essential"
  { command -v c++ || command -v g++ || command -v clang++; } >/dev/null 2>&1 \
    || need_tool "no C++ compiler (needed to build llama-cpp-python)" "apt-get install build-essential"
fi
probe="$LLM_MESH_HOME"
while [ ! -d "$probe" ]; do probe="$(dirname "$probe")"; done
free_kb="$(df -Pk "$probe" | awk 'NR==2 {print $4}')"
if [ "${free_kb:-0}" -lt $((MIN_DISK_GB * 1000 * 1000)) ]; then
  die "only $((free_kb / 1000)) MB free under $probe; a node needs at least $MIN_DISK_GB GB" "free some disk or set LLM_MESH_HOME to a larger disk"
fi

# The state directory holds the node's keys: one this script makes is mode 0700, as llm-mesh
# makes it (one that exists already is left as it is; the node warns when others can read it).
HOME_MADE=0
make_home() {
  if [ "$HOME_MADE" = 0 ] && [ ! -d "$LLM_MESH_HOME" ]; then
    run mkdir -p "$(dirname "$LLM_MESH_HOME")" && run mkdir -m 700 "$LLM_MESH_HOME"
  fi
  HOME_MADE=1
}

# one key is one node: a home whose node.key.lock a running node holds (`llm-mesh up`'s) has
# no room for this one, whatever its port; said before anything is written there (the venv,
# $LLM_MESH_HOME/venv by default, included: found 2026-12-06, a new user waited for a whole
# install into up's home before this refusal) and before any question is asked
HELD=""
if "$PYTHON" -c 'import fcntl, os, sys
try: fd = os.open(sys.argv[1], os.O_RDONLY)
except OSError: sys.exit(1)
try: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
except OSError: sys.exit(0)
sys.exit(1)' "$LLM_MESH_HOME/node.key.lock"; then
  HELD="a node is running with $LLM_MESH_HOME/node.key (its node.key.lock is held; \`llm-mesh up\`'s?): no second node can start with that key"
  FIX="give this node a home of its own: LLM_MESH_HOME=DIR $0 ... (or stop that node first, if it is this one)"
  if [ "$NO_START" = 1 ] || [ "$SERVICE" = 1 ]; then say "note: $HELD; $FIX"; else need_tool "$HELD" "$FIX"; fi
fi

# The registry and the port: asked now, before the venv, the install and the model download
# (minutes), so that the port where the node will listen is checked before them too
toml_value() { # toml_value KEY: node.toml's value of KEY, or nothing
  [ -f "$CONFIG" ] || return 0
  "$PYTHON" -c 'import sys
try: import tomllib
except ImportError: import tomli as tomllib
v = tomllib.load(open(sys.argv[1], "rb")).get(sys.argv[2])
print("" if v is None else v)' "$CONFIG" "$1" 2>/dev/null || true
}
# an empty answer keeps what the config step picks (node.toml's, else the default): shown as such
REGISTRY="${REGISTRY:-${LLM_MESH_REGISTRY_URL:-}}"
SHOWN=""
if [ "$INTERACTIVE" = 1 ] && [ -z "$REGISTRY" ]; then SHOWN="$(toml_value registry_url)"; fi
REGISTRY="$(ask "Registry URL" "$REGISTRY" "${REGISTRY:-${SHOWN:-http://127.0.0.1:8800}}")"
SHOWN=""
if [ "$INTERACTIVE" = 1 ] && [ -z "$PORT" ]; then SHOWN="$(toml_value port)"; fi
PORT="$(ask "Port" "${PORT:-}" "${PORT:-${SHOWN:-8801}}")"
if [ -n "$PORT" ] && ! [[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ]]; then
  die "the port must be a number from 1 to 65535, not '$PORT'" "e.g. 8801"
fi
# node.toml from the answers: node_toml_py PYTHON write (step 5: prints what it did), or
# node_toml_py PYTHON check: only the check of the port where the node will listen (exit 0
# free, 3 this run stops, 5 taken and said, 4 unknown: node.toml and no TOML reader)
node_toml_py() {
  CFG_HOME="$LLM_MESH_HOME" CFG_PLAIN_HTTP="$PLAIN_HTTP" CFG_REGISTRY="$REGISTRY" CFG_REGISTRY_KEY="$REGISTRY_KEY" CFG_ALLOW_HTTP="$ALLOW_HTTP_FIRST_USE" CFG_NODE_ID="${NODE_ID:-}" CFG_PORT="$PORT" CFG_PUBLIC_URL="$PUBLIC_URL" CFG_ENGINE="$ENGINE" \
  CFG_STARTS="$((1 - NO_START))" CFG_HELD="${HELD:+1}" CFG_PORT_SAID="$PORT_SAID" \
  CFG_MODELS="$MODELS" CFG_REGION="$REGION" CFG_GPU="$GPU" CFG_REGISTRY_CA="$CA_ABS" "$1" - "$CONFIG" "$DRY_RUN" "$2" <<'PYEOF'
import errno, ipaddress, os, sys, tempfile, uuid, socket, urllib.parse
env = os.environ
path, dry, check = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "check"
try:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
except ImportError:  # the early port check, with Python 3.10 and no venv yet: no TOML reader
    if not check:
        raise
    if os.path.exists(path):
        sys.exit(4)  # node.toml's port and host unknown here: the config step checks them
try:
    from tomli_w import dumps
except ImportError:
    if not dry and not check:
        raise
    import json  # a dry run before the venv exists: the few types a node.toml holds
    def _toml(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[\n" + "".join(f"    {_toml(x)},\n" for x in v) + "]"
        return json.dumps(str(v), ensure_ascii=False)
    def dumps(d):
        return "".join(f"{k} = {_toml(v)}\n" for k, v in d.items())
old = {}
if os.path.exists(path):
    try:
        with open(path, "rb") as f:
            old = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        sys.exit(f"existing {path} is not valid TOML ({e}); move it away and run again")
def pick(flag, key, default):
    return flag if flag else old.get(key, default)
# the parsed host (userinfo, port, [IPv6]), not a substring; `localhost` by its name, not
# resolved: as the node judges its registry URL (core/first_use.loopback_host), and the node
# then registers the literal http://127.0.0.1, which the registry judges as an address
def is_loopback(url):
    try:
        h = (urllib.parse.urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return False
    if h == "localhost":
        return True
    try:
        a = ipaddress.ip_address(h)
    except ValueError:
        return False
    return (getattr(a, "ipv4_mapped", None) or a).is_loopback
def lan_host(url):  # a private (LAN) address, as the registry's --allow-private-node names
    try:
        a = ipaddress.ip_address(urllib.parse.urlsplit(url).hostname or "")
    except ValueError:
        return False
    return a.is_private and not a.is_loopback
def origin(url):
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc.rpartition('@')[2]}"
def chosen_host(loop):
    return "127.0.0.1" if loop else "0.0.0.0"
def chosen_url(loop, p, scheme="http"):
    return f"http://127.0.0.1:{p}" if loop else f"{scheme}://{socket.getfqdn()}:{p}"
registry = pick(env["CFG_REGISTRY"], "registry_url", "http://127.0.0.1:8800").rstrip("/")
loopback = is_loopback(registry)
# a registry on another machine refuses a plain-http node (403 plain_http_remote: prompts
# would cross the network in clear) unless its operator opted out: the node serves https
tls = not loopback and env.get("CFG_PLAIN_HTTP") != "1"
port = int(pick(env["CFG_PORT"], "port", 8801))
# host and public_url this script chose itself (for the registry and port of the time)
# follow a new --registry or --port; ones the operator gave are kept as given
old_loopback = is_loopback(old.get("registry_url", "http://127.0.0.1:8800"))
old_port = int(old.get("port", 8801))
host = old.get("host") or ""
if not host or host == chosen_host(old_loopback):
    host = chosen_host(loopback)
def port_taken(h, p):  # as LLM_Mesh.server_process.port_taken (a dry run may lack the package)
    with socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((h, p))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False
def check_port(early):  # 0: free; 3: this run stops (said); 5: taken, said (a note, or dry)
    if not port_taken(host, port):  # e.g. `llm-mesh up`'s node on 8801: no node starts there
        return 0
    free = next((p for p in range(port + 1, min(port + 100, 65536)) if not port_taken(host, p)),
                None)
    taken = (f"port {port} on {host} is already in use (another node? `llm-mesh up`'s?)")
    fix = f"run again with a free port: --port {free or 'N'} (or stop what listens on {port})"
    # a run that starts the node stops here, before node.toml (found 2026-12-06, cli38: it
    # went on and started a node that could not listen), and before the venv, the install
    # and the model download (found 2026-12-06, setup38: said only after those minutes);
    # this home's node running (its node.key.lock held: --service or --no-start again) may
    # be what holds it: a note
    if env["CFG_STARTS"] == "1" and env["CFG_HELD"] != "1":
        if not dry:
            written = ("it stopped before the venv, the install and the model download: "
                       "nothing was written" if early else "node.toml was not written (the "
                       "venv and node.key are kept for the next run)")
            print(f"setup-node-operator: error: {taken}: this node cannot start there; "
                  f"{written}", file=sys.stderr)
            print(f"setup-node-operator: how to fix: {fix}", file=sys.stderr)
            return 3
        print(f"setup-node-operator: a real run would stop here: {taken}; fix: {fix}",
              file=sys.stderr)
    else:
        print(f"setup-node-operator: note: {taken}: unless that is this node running already, "
              f"it cannot start there; {fix}", file=sys.stderr)
    return 5
if check:
    sys.exit(check_port(early=True))
public = pick(env["CFG_PUBLIC_URL"], "public_url", "")
if not env["CFG_PUBLIC_URL"] and public.rstrip("/") in (
    chosen_url(old_loopback, old_port), chosen_url(old_loopback, old_port, "https")
):
    public = ""
if not public:
    public = chosen_url(loopback, port, "https" if tls else "http")
elif tls and public.startswith("http://") and env["CFG_PUBLIC_URL"]:
    public = "https://" + public[len("http://"):]
    print(f"setup-node-operator: note: public_url {public}: https, since the registry is on "
          "another machine and refuses plain-http nodes; --plain-http keeps http (only if "
          "its operator runs registry serve --allow-plain-http-nodes)", file=sys.stderr)
elif not loopback and public.startswith("http://"):  # --plain-http, or node.toml's, kept
    print(f"setup-node-operator: note: public_url {public} is plain http to a registry on "
          "another machine: it refuses the node (403 plain_http_remote) unless its operator "
          "runs registry serve --allow-plain-http-nodes"
          + (f" or names this node: registry serve --allow-private-node {origin(public)}"
             if lan_host(public) else "")
          + ("" if not tls else "; for https pass --public-url https://HOST:PORT"),
          file=sys.stderr)
split = urllib.parse.urlsplit(public)
public_port = split.port or (443 if split.scheme == "https" else 80)
if public_port != port:  # right behind a port forward; else the node is never reached
    print(f"setup-node-operator: note: public_url {public} is port {public_port}, the node "
          f"listens on {port}: right only behind a port forward (else pass --public-url)",
          file=sys.stderr)
# said in check mode, before the venv, the install and the model download; the write mode
# checks again only a port found free then (taken since), or not checked (no TOML reader)
if env["CFG_PORT_SAID"] != "1" and check_port(early=False) == 3:
    sys.exit(3)
engine = pick(env["CFG_ENGINE"], "engine", "llama-cpp")
cfg = {
    # the id node.key gives (a dry run makes no key: it says so rather than make one up)
    "node_id": env.get("CFG_NODE_ID") or old.get("node_id")
    or (("(derived from the existing node.key)" if os.path.exists(env["CFG_HOME"] + "/node.key")
         else "(derived from node.key, made by a real run)") if dry
        else f"node-{socket.gethostname().split('.')[0]}-{uuid.uuid4().hex[:6]}"),
    "host": host,
    "port": port,
    "public_url": public.rstrip("/"),
    "registry_url": registry,
    "engine": engine,
    "models": env["CFG_MODELS"].split(","),
    "max_concurrency": int(old.get("max_concurrency", 1)),
    "max_queue": int(old.get("max_queue", 8)),
}
if env.get("CFG_GPU") == "cuda" or "n_gpu_layers" in old:
    # a CUDA build offloads every layer to the GPU unless the operator chose otherwise
    cfg["n_gpu_layers"] = int(old.get("n_gpu_layers", -1))
# the operator's credential, key, pinned gateway key and opt-in stay
for kept in ("operator_token", "key_file", "registry_public_key", "allow_http_first_use",
             "registry_ca"):
    if old.get(kept):
        cfg[kept] = old[kept]
if env.get("CFG_REGISTRY_CA"):  # LLM_MESH_REGISTRY_CA, absolute
    cfg["registry_ca"] = env["CFG_REGISTRY_CA"]
if env.get("CFG_REGISTRY_KEY"):
    cfg["registry_public_key"] = env["CFG_REGISTRY_KEY"].strip()
if env.get("CFG_ALLOW_HTTP") == "1":
    cfg["allow_http_first_use"] = True
# the node's TLS certificate and key (llm-mesh node tls init makes them): its https
tls_host = "-"
if public.startswith("https://") and (tls or old.get("tls_cert")):
    cfg["tls_cert"] = old.get("tls_cert") or os.path.join(env["CFG_HOME"], "node-tls.crt")
    cfg["tls_key"] = old.get("tls_key") or os.path.join(env["CFG_HOME"], "node-tls.key")
    tls_host = urllib.parse.urlsplit(public).hostname or "-"
# the token the operator runs this with is kept too (node.toml is mode 0600): the node a
# service, a reboot or a later "node start" runs has no $LLM_MESH_OPERATOR_TOKEN (401)
token = env.get("LLM_MESH_OPERATOR_TOKEN", "").strip()
if token:
    cfg["operator_token"] = token
region = pick(env["CFG_REGION"], "region", "")
if region:
    cfg["region"] = region
text = "# LLM Mesh node config, written by setup-node-operator.sh\n" + dumps(cfg)
# first line: the certificate to make, if any (host, cert, key), for the script
print("\t".join(("tls", tls_host, cfg.get("tls_cert", "-"), cfg.get("tls_key", "-"))))
current = open(path).read() if os.path.exists(path) else None
if current == text:
    print("unchanged")
elif dry:  # a credential is not printed
    shown = {**cfg, "operator_token": "(hidden)"} if "operator_token" in cfg else cfg
    print("would write:\n# LLM Mesh node config, written by setup-node-operator.sh\n" + dumps(shown))
else:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".node.toml.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    print("written")
PYEOF
}
# the port (--port, the answer, node.toml's or 8801) on the host the node will listen on
# (node.toml's, else 127.0.0.1 for a loopback registry, else 0.0.0.0): all known here
PORT_SAID=""
PORT_RC=0
node_toml_py "$PYTHON" check || PORT_RC=$?
case "$PORT_RC" in
  0|4) ;;  # free; or unknown (4: no TOML reader before the venv): the config step checks it
  5) PORT_SAID=1 ;;  # taken: said (a note, or where a real run would stop)
  3) exit 1 ;;
  *) die "could not read $CONFIG" "check the message above; move it away to start afresh" ;;
esac


# --- 2. venv -------------------------------------------------------------------------
if [ -x "$VENV/bin/python" ]; then
  say "venv: reusing $VENV"
else
  say "venv: creating $VENV"
  if [ "$(dirname "$VENV")" = "$LLM_MESH_HOME" ]; then make_home; else run mkdir -p "$(dirname "$VENV")"; fi
  run "$PYTHON" -m venv "$VENV" || die "could not create a venv at $VENV" "apt-get install python3-venv, or pass --venv DIR"
fi
VPY="$VENV/bin/python"

# --- 3. install ----------------------------------------------------------------------
installed_from_repo() {
  [ -n "$REPO" ] && [ -x "$VPY" ] && [ -x "$VENV/bin/llm-mesh" ] && [ "$(cd / && "$VPY" -c \
    'import pathlib, LLM_Mesh; print(pathlib.Path(LLM_Mesh.__file__).resolve().parent.parent)' 2>/dev/null)" = "$REPO" ]
}
if [ "$SKIP_INSTALL" = 1 ]; then
  say "install: skipped (--skip-install)"
elif installed_from_repo; then
  say "install: llm-mesh already installed from $REPO"
elif [ -n "$REPO" ]; then
  run "$VPY" -m pip install --upgrade pip >/dev/null || true
  run "$VPY" -m pip install -e "${REPO}[node]" || die "pip install of llm-mesh failed" "read pip's message above; check your network"
else
  run "$VPY" -m pip install "llm-mesh[node]" || die "pip install llm-mesh failed" "read pip's message above; check your network"
fi
if [ "${ENGINE:-llama-cpp}" = llama-cpp ] && [ "$SKIP_INSTALL" = 0 ]; then
  [ -n "$REPO" ] || die "llama-cpp-python must be built from a checkout" "clone the repository and run its setup-node-operator.sh"
  run env LLM_MESH_GPU="$GPU" bash "$REPO/scripts/install-llama-cpp.sh" "$VPY" \
    || die "building llama-cpp-python failed" "check the compiler output above; see scripts/install-llama-cpp.sh"
fi

# From a checkout the package is importable even before (or without) installing it.
if [ -n "$REPO" ]; then export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"; fi
# The Python that plans: the venv's; on a dry run before the venv exists, $PYTHON with the
# standard library only (hardware detection, the plan and the config preview need no more).
PLAN_PY="$VPY"
if [ ! -x "$VPY" ]; then
  [ "$DRY_RUN" = 1 ] || die "no Python in $VENV" "run again without --skip-install"
  PLAN_PY="$PYTHON"
fi

# --- 4. hardware and models ----------------------------------------------------------
PLAN_JSON="$("$PLAN_PY" -m LLM_Mesh.node.hardware --home "$LLM_MESH_HOME" --plan)" \
  || die "hardware detection failed" "run: $PLAN_PY -m LLM_Mesh.node.hardware --plan"
"$PLAN_PY" - "$PLAN_JSON" <<'PYEOF'
import json, sys
d = json.loads(sys.argv[1]); hw = d["hardware"]
print(f"hardware: {hw['cpu_count']} CPUs, {hw['memory_bytes'] / 1e9:.1f} GB RAM, "
      f"{hw['disk_free_bytes'] / 1e9:.1f} GB free disk, "
      + (", ".join(g["name"] for g in hw["gpus"]) or "no GPU"))
if d["plan"]:
    print("  models (+ recommended for this machine, ~ fits but not recommended, - does not fit):")
for e in d["plan"]:
    mark = "+" if e["recommended"] else ("~" if e["fits"] else "-")
    print(f"  {mark} {e['model']:<24} {e['reason']}")
if d["plan"]:
    print(f"  {d.get('speed_note', '')}")
    print(f"  proposed: {', '.join(d['default_models']) or 'none'} (--models picks others)")
PYEOF
DEFAULT_MODELS="$("$PLAN_PY" -c 'import json,sys; print(",".join(json.loads(sys.argv[1])["default_models"]))' "$PLAN_JSON")"

# --- 5. config -----------------------------------------------------------------------
MODELS_FROM="--models"
if [ -z "$MODELS" ] && [ -f "$CONFIG" ]; then
  MODELS_FROM="node.toml"
  MODELS="$("$PLAN_PY" -c 'import sys
try: import tomllib
except ImportError: import tomli as tomllib
print(",".join(tomllib.load(open(sys.argv[1], "rb")).get("models", [])))' "$CONFIG" 2>/dev/null || true)"
fi
if [ -n "$MODELS" ] && [ "$MODELS" != "$DEFAULT_MODELS" ] && [ "$INTERACTIVE" = 0 ]; then
  # which the node serves, when not the proposal (found 2026-12-05: said nowhere)
  say "models: $MODELS (from $MODELS_FROM; proposed: ${DEFAULT_MODELS:-none})"
fi
MODELS="$(ask "Models to host (comma-separated)" "${MODELS:-$DEFAULT_MODELS}")"
[ -n "$MODELS" ] || die "no model fits this machine" "pass --models ID with a model you can host, or --engine sim to try the network"

make_home
if [ "${ENGINE:-llama-cpp}" = llama-cpp ]; then
  IFS=, read -r -a MODEL_LIST <<<"$MODELS"
  run "$VPY" -m LLM_Mesh.node.downloads --models-dir "$LLM_MESH_HOME/models" "${MODEL_LIST[@]}" \
    || die "could not get the model files" "check the messages above; pass --models to pick others"
fi

# The node's key ($LLM_MESH_HOME/node.key, mode 0600; made once, never overwritten): its id comes from it.
# A dry run in a home that has one says it is kept and gives its id, as the real run's config
# will (found 2026-12-06, cli38: it said it would make one, and showed no id).
NODE_ID=""
NODE_KEY="$LLM_MESH_HOME/node.key"
if [ "$DRY_RUN" = 1 ] && [ -e "$NODE_KEY" ]; then
  KEY_SAID="$("$PLAN_PY" -c 'import sys
from pathlib import Path
try:
    from LLM_Mesh.core.identity import node_id_for, public_key_of
    from LLM_Mesh.node.keys import load_key
except ImportError:  # a dry run before the venv exists: the real run reads it
    sys.exit(2)
try:
    print(node_id_for(public_key_of(load_key(Path(sys.argv[1])))))
except (OSError, ValueError) as e:
    print(e)
    sys.exit(1)' "$NODE_KEY" 2>/dev/null)" && KEY_RC=0 || KEY_RC=$?
  case "$KEY_RC" in
    0) NODE_ID="$KEY_SAID"; say "node key: $NODE_KEY exists: kept and used (node id $NODE_ID)" ;;
    2) say "node key: $NODE_KEY exists: kept and used (its node id: read by a real run)" ;;
    *) need_tool "could not read the node key: ${KEY_SAID:-$NODE_KEY}" "restore it, or move it away (this node then gets a new id)" ;;
  esac
elif [ "$DRY_RUN" = 1 ]; then
  say "would run: $VPY -m LLM_Mesh.cli node keys init --home $LLM_MESH_HOME"
else
  NODE_ID="$("$VPY" -m LLM_Mesh.cli node keys init --home "$LLM_MESH_HOME" | sed -n 's/^node id: //p')" \
    || die "could not make the node key in $LLM_MESH_HOME" "check that $LLM_MESH_HOME is writable"
  say "node key: $LLM_MESH_HOME/node.key (node id $NODE_ID)"
fi
RESULT="$(node_toml_py "$PLAN_PY" write)" || { [ $? = 3 ] && exit 1; die "could not write $CONFIG" "check the message above and that $LLM_MESH_HOME is writable"; }
TLS_HOST="" TLS_CERT="" TLS_KEY=""
IFS=$'\t' read -r _ TLS_HOST TLS_CERT TLS_KEY <<<"${RESULT%%$'\n'*}"
RESULT="${RESULT#*$'\n'}"
case "$RESULT" in
  unchanged) say "config: $CONFIG unchanged" ;;
  written) say "config: wrote $CONFIG" ;;
  *) say "config: $RESULT" ;;
esac

# https for a registry on another machine (it refuses plain-http nodes there, 403): the
# node's self-signed certificate, whose fingerprint its signed registration carries
if [ "$TLS_HOST" != "-" ]; then
  if [ -f "$TLS_CERT" ] && [ -f "$TLS_KEY" ]; then
    say "tls: the node serves https with $TLS_CERT"
  else
    run "$VPY" -m LLM_Mesh.cli node tls init --home "$LLM_MESH_HOME" --host "$TLS_HOST" \
      --cert "$TLS_CERT" --key "$TLS_KEY" \
      || die "could not make the node's TLS certificate" "run: llm-mesh node tls init --host $TLS_HOST"
  fi
fi

# the registry refuses a node without an operator token (401): say so before it starts
if [ -z "${LLM_MESH_OPERATOR_TOKEN:-}" ] && ! grep -qE '^operator_token *= *"[^"]' "$CONFIG" 2>/dev/null; then
  say "note: no operator token: the registry refuses this node (401) until you set LLM_MESH_OPERATOR_TOKEN=lmo_... or put operator_token = \"lmo_...\" in $CONFIG (the registry's admin makes one: llm-mesh registry operators add NAME)"
fi

# a registry that does not answer now: the node starts and keeps asking it; said before it
# starts (found 2026-12-07, newuser44: the migration guide's bare ./setup-node-operator.sh,
# no registry at the default http://127.0.0.1:8800, started a node whose log only said
# "registry unreachable" every few seconds). Standard library only (a dry run on a bare
# machine); an https registry whose certificate this Python cannot check is not judged
SILENT="$(CFG_REGISTRY="$REGISTRY" "$PLAN_PY" - "$CONFIG" <<'PYEOF' 2>/dev/null || true
import os, ssl, sys, threading, time, urllib.error, urllib.request
try:
    import tomllib
except ImportError:
    tomllib = None
old = {}
if tomllib is not None and os.path.exists(sys.argv[1]):
    with open(sys.argv[1], "rb") as f:
        old = tomllib.load(f)
urls = os.environ["CFG_REGISTRY"] or old.get("registry_url") or "http://127.0.0.1:8800"
urls = ",".join(urls) if isinstance(urls, list) else str(urls)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy: as the node
heard = set()  # answered, or not judged (a certificate this Python cannot check)


def probe(url):
    try:
        opener.open(url + "/mesh/health", timeout=3).close()
    except urllib.error.HTTPError:
        pass  # something answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if not isinstance(getattr(exc, "reason", exc), (ssl.SSLError, ssl.CertificateError)):
            return
    heard.add(url)


wanted = list(dict.fromkeys(u.strip().rstrip("/") for u in urls.split(",") if u.strip()))
for url in wanted:  # a name that does not resolve may hang in getaddrinfo: 4 s in all
    threading.Thread(target=probe, args=(url,), daemon=True).start()
end = time.monotonic() + 4
while len(heard) < len(wanted) and time.monotonic() < end and threading.active_count() > 1:
    time.sleep(0.05)
print(" ".join(u for u in wanted if u not in heard))
PYEOF
)"
if [ -n "$SILENT" ]; then
  say "note: no registry answers at $SILENT now: the node starts anyway and keeps asking it (its log says \"registry unreachable\" each time) until one does; start the registry first (on this machine: llm-mesh up --allow-local-nodes), or pass --registry URL"
fi

# a plain-http registry on another machine: the node starts only with the gateway's key
# pinned, or trust on first use allowed (LLM_Mesh/core/first_use.py decides, as the node does)
TRUST="$(CFG_REGISTRY="$REGISTRY" CFG_REGISTRY_KEY="$REGISTRY_KEY" CFG_ALLOW_HTTP="$ALLOW_HTTP_FIRST_USE" \
  "$PLAN_PY" - "$CONFIG" "$LLM_MESH_HOME/gateway.pin" <<'PYEOF' 2>/dev/null || echo unknown
import os, sys
try:
    import tomllib
except ImportError:
    import tomli as tomllib
from LLM_Mesh.config import split_urls
from LLM_Mesh.core.first_use import decide_first_use
env, old = os.environ, {}
if os.path.exists(sys.argv[1]):
    with open(sys.argv[1], "rb") as f:
        old = tomllib.load(f)
urls = env["CFG_REGISTRY"] or old.get("registry_url") or "http://127.0.0.1:8800"
urls = split_urls(",".join(urls) if isinstance(urls, list) else str(urls))
pinned = bool(env["CFG_REGISTRY_KEY"] or old.get("registry_public_key") or os.path.exists(sys.argv[2]))
allowed = env["CFG_ALLOW_HTTP"] == "1" or bool(old.get("allow_http_first_use"))
d = decide_first_use(urls, pinned=pinned, allowed=allowed)
print(d.verdict.value, " ".join(d.exposed))
PYEOF
)"
case "$TRUST" in
  refused*)
    PROBLEM="registry ${TRUST#refused } is plain http to another machine and this node has no pinned gateway key: anyone on the network path could answer its first registration with their own key, and the node would keep it"
    FIX="use https (--registry https://...), or pin the key: run 'llm-mesh registry public-key' on the registry's machine and pass --registry-public-key KEY, or on a network you trust pass --allow-http-first-use"
    if [ "$NO_START" = 1 ]; then
      say "note: $PROBLEM; the node refuses to start until you $FIX"
    else
      need_tool "$PROBLEM" "$FIX"
    fi ;;
  opted_in*) say "note: --allow-http-first-use: the node trusts the first answer of plain-http ${TRUST#opted_in }; pin the key (--registry-public-key) or use https where you can" ;;
esac

# --- 6. start ------------------------------------------------------------------------
# --home: run in another shell (no LLM_MESH_HOME there), it is still this home's node
# (its node.key, pin, served log), not a new one in ~/.llm-mesh (found 2026-12-06, newuser33)
START=("$VENV/bin/llm-mesh" node start --home "$LLM_MESH_HOME" --config "$CONFIG")
# the registry's CA (node.toml's registry_ca too): the command and the service's ExecStart
# name the one this runs with, absolute (found 2026-12-06, newuser35b)
if [ -n "$CA_ABS" ]; then
  [ -f "$CA_ABS" ] || die "LLM_MESH_REGISTRY_CA=$LLM_MESH_REGISTRY_CA is not a file" "point it at the registry's CA certificate (PEM)"
  START+=(--registry-ca "$CA_ABS")
fi
if [ "$NO_START" = 1 ]; then
  say "set up; start the node with: ${START[*]}"
  exit 0
fi
if [ "$DRY_RUN" = 0 ] && [ ! -x "$VENV/bin/llm-mesh" ]; then
  die "no llm-mesh command in $VENV" "run again without --skip-install"
fi
if [ "$SERVICE" = 1 ]; then
  UNIT_DIR="$HOME/.config/systemd/user"
  UNIT="$UNIT_DIR/llm-mesh-node.service"
  # the service's environment names the CA too (ExecStart's --registry-ca wins)
  CA_LINE=""
  if [ -n "$CA_ABS" ]; then
    CA_LINE="
Environment=LLM_MESH_REGISTRY_CA=$CA_ABS"
  fi
  # exit 78: the registry does not know the operator token (node start says so): no restart
  UNIT_TEXT="[Unit]
Description=LLM Mesh node
After=network-online.target

[Service]
Environment=LLM_MESH_HOME=$LLM_MESH_HOME$CA_LINE
ExecStart=${START[*]}
Restart=on-failure
RestartSec=10
RestartPreventExitStatus=78

[Install]
WantedBy=default.target"
  if [ -f "$UNIT" ] && [ "$(cat "$UNIT")" = "$UNIT_TEXT" ]; then
    say "service: $UNIT unchanged"
  elif [ "$DRY_RUN" = 1 ]; then
    say "would write $UNIT"
  else
    mkdir -p "$UNIT_DIR"
    tmp="$(mktemp "$UNIT_DIR/.llm-mesh-node.XXXXXX")"
    printf '%s\n' "$UNIT_TEXT" >"$tmp" && mv "$tmp" "$UNIT"
    say "service: wrote $UNIT"
  fi
  # a dry run goes on past it: the whole plan (found 2026-12-05: it ended here, exit 1)
  command -v systemctl >/dev/null 2>&1 || need_tool "systemctl not found" "start the node by hand: ${START[*]}"
  run systemctl --user daemon-reload || die "systemctl --user failed" "log in with a user session (or: loginctl enable-linger $USER)"
  run systemctl --user enable --now llm-mesh-node.service || die "could not enable llm-mesh-node.service" "see: journalctl --user -u llm-mesh-node"
  if [ "$DRY_RUN" = 1 ]; then WHAT="would run the node as a service"; else WHAT="node running as a service"; fi
  say "$WHAT; logs: journalctl --user -u llm-mesh-node -f"
  exit 0
fi
if [ "$DRY_RUN" = 1 ]; then say "would start the node: ${START[*]}"; exit 0; fi
say "starting the node: ${START[*]}"
exec "${START[@]}"

#!/usr/bin/env bash
# Build .devcarry/ (git-ignored) for benchmarks/many_cores.sh on a machine that has no package
# index: the project's dependencies as wheels for that machine's Python, and this machine's
# PostgreSQL 15 server with the libraries it links (glibc's own left out).
#
#   bash benchmarks/make_devcarry.sh [PYTHON_VERSION]     (default 3.12: the lent GPU machine's)
#
# Needs pip's access to a package index here and PostgreSQL 15 installed under
# /usr/lib/postgresql/15 (Debian's postgresql-15). Prints the size: what travels must stay
# under the lent machine's 64 MiB with the repository.
set -eu
cd "$(dirname "$0")/.." || exit 1
PYV=${1:-3.12}
rm -rf .devcarry && mkdir -p .devcarry/whl
# the package's dependencies, resolved for PYV (pyproject.toml's [project] dependencies)
mapfile -t DEPS < <(python3 - <<'EOF'
import tomllib
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if "python_version" not in dep:
        print(dep)
EOF
)
python3 -m pip download -q --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform manylinux_2_34_x86_64 \
    --platform manylinux_2_31_x86_64 --platform any -d .devcarry/whl "${DEPS[@]}"
# not needed to serve (uvicorn's reload and websockets, log config as YAML, pygments)
rm -f .devcarry/whl/{pygments,pyyaml,watchfiles,websockets}-*

PG=/usr/lib/postgresql/15
tree=$(mktemp -d)
chmod 755 "$tree"  # mktemp's 0700 would be the extracted root's: PostgreSQL runs as nobody
mkdir -p "$tree$PG/bin" "$tree$PG/lib" "$tree/usr/share/postgresql" "$tree/libs"
cp "$PG"/bin/{postgres,initdb,pg_ctl,pg_isready,psql} "$tree$PG/bin/"
cp "$PG"/lib/*.so "$tree$PG/lib/"
rm -f "$tree$PG/lib/llvmjit.so"
cp -r /usr/share/postgresql/15 "$tree/usr/share/postgresql/"
for b in "$tree$PG"/bin/*; do ldd "$b"; done | awk '{print $3}' | grep / | sort -u |
    grep -v -E 'libc\.so|libm\.so|libgcc_s|libstdc\+\+|libresolv|libpthread|libdl|librt' |
    xargs -I{} cp -L {} "$tree/libs/"
tar cJf .devcarry/pg15.tar.xz -C "$tree" .
rm -rf "$tree"
du -sh .devcarry

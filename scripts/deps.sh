#!/bin/sh
# Installs what dcbench needs from Debian's packages, when it is missing.
# As root it runs apt-get; as another user it prints the exact command and
# fails, so that `make` stops with a clear message instead of a compile error.
set -e
PKGS="gcc g++ make pkg-config libopenblas-dev libopenblas-openmp-dev libblis-dev liblua5.4-dev libbenchmark-dev \
libpapi-dev papi-tools gnuplot-nox libcmocka-dev libdnnl-dev zlib1g-dev dataset-fashion-mnist parallel valgrind \
clang libclang-rt-14-dev libomp-dev libopenblas0-pthread llvm"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "dcbench: missing Debian packages:$missing" >&2
    echo "dcbench: run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "dcbench: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing

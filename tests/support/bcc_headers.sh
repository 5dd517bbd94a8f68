#!/usr/bin/env bash
# One kernel header tree per installed Debian headers package, for bcc.
#
# Debian splits a kernel's headers into linux-headers-<ver>-<arch> (generated
# files, config) and linux-headers-<ver>-common (the source headers); bcc
# wants them as one tree. This builds, for each /usr/src/linux-headers-*-amd64,
# a merged tree of symlinks (cp -as of -common, then of -amd64 over it) at
# <cache root>/kernel-headers/<ver>-amd64, without touching /lib/modules.
# Point BCC_KERNEL_SOURCE at it (tests/support/bcc_headers.py finds it).
#
# Usage: tests/support/bcc_headers.sh   (idempotent; safe to run twice at once)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/cache_dir.sh"
out_root="$collector_cache_root/kernel-headers"
mkdir -p "$out_root"

exec 9>"$out_root/.lock"
flock 9

shopt -s nullglob
for arch_dir in /usr/src/linux-headers-*-amd64; do
	release="${arch_dir#/usr/src/linux-headers-}"
	common="${arch_dir%-amd64}-common"
	dest="$out_root/$release"
	[ -d "$common" ] || { echo "bcc_headers: $common missing for $arch_dir" >&2; exit 1; }
	[ -e "$dest/.complete" ] && continue
	rm -rf "$dest" "$dest.tmp"
	mkdir -p "$dest.tmp"
	cp -as "$common/." "$dest.tmp/"
	cp -as --remove-destination "$arch_dir/." "$dest.tmp/"
	touch "$dest.tmp/.complete"
	mv "$dest.tmp" "$dest"
	echo "bcc_headers: $dest"
done

#!/bin/bash
# The image's base root file system: Debian bookworm (minbase) made by debootstrap, with
# the collector's run-time packages (python3 + venv, libbpf1, CA certificates), as one tar.
# No registry can be pulled from on the build machines, so this replaces `FROM debian`.
# Cached under the download cache (one build per set of packages; a lock keeps two
# concurrent builds from fetching at once). Prints the tar's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../tests/support/cache_dir.sh"
suite=bookworm
arch="$(dpkg --print-architecture)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="libbpf1,python3,python3-venv,ca-certificates"
dir="$collector_cache_root/debootstrap"
key="$(echo "$suite $arch $packages" | sha256sum | cut -c1-12)"
tar="$dir/$suite-minbase-$arch-$key.tar"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ ! -s "$tar" ]; then
	command -v debootstrap >/dev/null || { echo "rootfs.sh: debootstrap missing; apt-get install debootstrap" >&2; exit 1; }
	work="$(mktemp -d "$dir/root.XXXXXX")"
	trap 'rm -rf "$work"' EXIT
	echo "rootfs.sh: debootstrap $suite ($arch, minbase + $packages) into the cache" >&2
	debootstrap --variant=minbase --arch="$arch" --include="$packages" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 \
		|| { tail -5 "$work/log" >&2; echo "rootfs.sh: debootstrap failed (log above)" >&2; exit 1; }
	# what a container image does not need: apt lists and caches, docs, man pages
	rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin "$work/root/var/cache/apt/archives/"*.deb \
		"$work/root/usr/share/doc/"* "$work/root/usr/share/man/"* "$work/root/usr/share/info/"*
	tar --numeric-owner -C "$work/root" -cf "$tar.tmp" .
	mv "$tar.tmp" "$tar"
fi
echo "$tar"

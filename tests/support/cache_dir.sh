# Sourced by download scripts: the one place that says where downloads are cached.
# $PROCESS_COLLECTOR_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/process-collector.
# Outside the checkout, so a fresh clone (CI) reuses what an earlier run fetched.
collector_cache_root="${PROCESS_COLLECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/process-collector}"

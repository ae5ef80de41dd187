#!/usr/bin/env bash
# t_chaos_persistent: t_chaos with the function in persistent mode
# (VD_CHAOS_MODE=persistent): executors killed and restarted at random while
# their slots' processes serve framed units; the result must be
# byte-identical with no row missing or doubled. 30 s of chaos unless
# VD_CHAOS_S says otherwise.
export VD_CHAOS_MODE=persistent
export VD_CHAOS_S="${VD_CHAOS_S:-30}"
exec bash "$(dirname "$0")/t_chaos.sh" "$@"

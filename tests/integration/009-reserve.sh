#!/bin/bash
# --reserve allocates every replica's space up front; the default is thin.
# Servers without a zone are accepted, and status warns that the zones
# are unknown.
. "$(dirname "$0")/lib.sh"

start_repvold a
start_repvold b
repvol create thick --size 16M --reserve --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol create thin --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
for s in a b; do
    thick=$(du -k "${REPVOLD_DIR[$s]}/thick.data" | cut -f1)
    thin=$(du -k "${REPVOLD_DIR[$s]}/thin.data" | cut -f1)
    ((thick >= 16384)) || fail "reserved replica on $s has only ${thick}K allocated"
    ((thin < 1024)) || fail "thin replica on $s has ${thin}K allocated"
done
repvol status thin > "$T/st" 2>&1
grep -qi 'zones .*unknown\|unknown zone' "$T/st" || { cat "$T/st" >&2; fail "no warning about unknown zones"; }
log "ok"

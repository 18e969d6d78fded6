#!/bin/bash
# Bash completion (completion/repvol.bash): verbs, sub-verbs and each
# verb's options come from the programs' --help; volume and server
# names from the registry, the one given with --registry on the line.
. "$(dirname "$0")/lib.sh"

# shellcheck source=../../completion/repvol.bash
. "$TOP/completion/repvol.bash"
# complete_line LINE: what completing LINE offers (the cursor at its
# end), one word per line; the program is this build's.
complete_line() {
    local line=$1
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_WORDS[0]=${COMP_WORDS[0]/repvold/$REPVOLD}
    COMP_WORDS[0]=${COMP_WORDS[0]/#repvol/$REPVOL}
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    if [[ ${COMP_WORDS[0]} == "$REPVOLD" ]]; then _repvold; else _repvol; fi
    printf '%s\n' ${COMPREPLY[@]+"${COMPREPLY[@]}"}
}
offers() {   # offers LINE WORD...: every WORD is among the completions
    local got w
    got=$(complete_line "$1")
    shift
    for w in "$@"; do
        grep -qx -- "$w" <<<"$got" || fail "completing '$LINE_SHOWN' does not offer '$w' (got: $(tr '\n' ' ' <<<"$got"))"
    done
}
check() { LINE_SHOWN=$1; offers "$@"; }
refuses() {  # refuses LINE WORD: WORD is not offered
    ! grep -qx -- "$2" <<<"$(complete_line "$1")" || fail "completing '$1' offers '$2'"
}

check "repvol " create attach detach heal settings server snapshot events delete
check "repvol at" attach
refuses "repvol at" delete
check "repvol attach vol --h" --heal-after --help --host
refuses "repvol attach vol --he" --host
check "repvol attach vol --" --nbd --ublk --device --lease-ttl --registry
check "repvol server " list drain undrain
check "repvol snapshot " create list delete restore
check "repvol settings " heal-after
check "repvol server drain --" --wait --timeout
check "repvold --" --data-dir --listen --registry --advertise --zone
check "repvol attach vol --device " auto

start_repvold s1 az-a --registry "$REPVOL_REGISTRY"
start_repvold s2 az-b --registry "$REPVOL_REGISTRY"
repvol create alpha --size 8M >/dev/null
repvol create beta --size 8M >/dev/null
check "repvol status " alpha beta
check "repvol detach a" alpha
check "repvol server drain " s1 s2
check "repvol create x --replica " s1 s2
check "repvol events --volume " alpha
# Another registry on the line: its volumes, not the environment's.
mkdir "$T/other"
refuses "repvol --registry $T/other status " alpha
REPVOL_REGISTRY=$T/other check "repvol --registry $REPVOL_REGISTRY status " alpha
repvol delete alpha >/dev/null
repvol delete beta >/dev/null
log "ok"

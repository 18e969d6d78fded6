# bash completion for repvol and repvold (make install puts it in
# $PREFIX/share/bash-completion/completions).  Verbs, sub-verbs and
# options come from the programs' own --help, so they never drift;
# volume and server names from the registry (repvol list --json,
# repvol server list --json), with the --registry given on the line.

_repvol_help_words() {   # _repvol_help_words REPVOL [VERB]: its options
    "$1" ${2:+"$2"} --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

_repvol_names() {   # _repvol_names REPVOL REG_ARGS... -- WHAT (volumes|servers)
    local prog=$1 what=${!#}
    local args=("${@:2:$#-2}")
    if [[ $what == servers ]]; then
        "$prog" "${args[@]}" server list --json 2>/dev/null
    else
        "$prog" "${args[@]}" list --json 2>/dev/null
    fi | python3 -c '
import json, sys
try:
    for o in json.load(sys.stdin):
        print(o["name"])
except Exception:
    pass' 2>/dev/null
}

_repvol() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local prog=${COMP_WORDS[0]} verb="" sub="" i nargs=0 reg=()
    # The verb is the first word that is not a global option or its value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --registry|--tls-dir|--tls-psk)
                reg+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}"); ((i++)) ;;
            --registry=*|--tls-dir=*|--tls-psk=*) reg+=("${COMP_WORDS[i]}") ;;
            -*) ;;
            *)  if [[ -z $verb ]]; then verb=${COMP_WORDS[i]}
                elif [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; nargs=1
                else ((nargs++)); fi ;;
        esac
    done
    case $prev in
        --registry|--tls-dir|--data-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --tls-psk) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --replica|--force-stale)
            COMPREPLY=($(compgen -W "$(_repvol_names "$prog" "${reg[@]}" servers)" -- "$cur")); return ;;
        --volume)
            COMPREPLY=($(compgen -W "$(_repvol_names "$prog" "${reg[@]}" volumes)" -- "$cur")); return ;;
        --device) COMPREPLY=($(compgen -W auto -- "$cur")); return ;;
        --nbd-device) COMPREPLY=($(compgen -W "auto $(ls /dev/nbd* 2>/dev/null)" -- "$cur")); return ;;
        --nbd) COMPREPLY=($(compgen -W "unix: tcp:" -- "$cur")); compopt -o nospace; return ;;
        --block-size) COMPREPLY=($(compgen -W "512 4096" -- "$cur")); return ;;
        --size|--timeout|--nbd-dead-timeout|--since|--lease-ttl|--heal-after|--resync-rate|--chunk-size|--queues|--depth|--replicas|--name|--to|--host)
            return ;;
    esac
    if [[ -z $verb ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$(_repvol_help_words "$prog")" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$("$prog" --help 2>/dev/null | sed -n 's/^ *repvol \([a-z]*\).*/\1/p' | sort -u)" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_repvol_help_words "$prog" "$verb")" -- "$cur"))
        return
    fi
    case $verb in
        server|snapshot|replica)
            if [[ -z $sub ]]; then
                COMPREPLY=($(compgen -W "$("$prog" "$verb" --help 2>/dev/null | sed -n "s/^.*repvol $verb \([a-z]*\).*/\1/p" | sort -u)" -- "$cur"))
            elif [[ $verb == server && $sub != list && $nargs == 1 ]]; then
                COMPREPLY=($(compgen -W "$(_repvol_names "$prog" "${reg[@]}" servers)" -- "$cur"))
            elif [[ ($verb == snapshot && $sub == create && $nargs == 1) ||
                    ($verb == replica && $nargs == 1) ]]; then
                COMPREPLY=($(compgen -W "$(_repvol_names "$prog" "${reg[@]}" volumes)" -- "$cur"))
            elif [[ $verb == replica && $nargs -ge 2 ]]; then
                COMPREPLY=($(compgen -W "$(_repvol_names "$prog" "${reg[@]}" servers)" -- "$cur"))
            fi ;;
        settings) [[ -n $sub ]] || COMPREPLY=($(compgen -W heal-after -- "$cur")) ;;
        create|events) ;;
        *)  COMPREPLY=($(compgen -W "$(_repvol_names "$prog" "${reg[@]}" volumes)" -- "$cur")) ;;
    esac
}

_repvold() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        --data-dir|--tls-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --tls-psk) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --io-engine) COMPREPLY=($(compgen -W "io_uring libaio" -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "$(_repvol_help_words "${COMP_WORDS[0]}")" -- "$cur"))
}

complete -F _repvol repvol
complete -F _repvold repvold

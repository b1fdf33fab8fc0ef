# bash completion for idprime(1): commands, each command's options, option
# values (workloads, files), store URIs (schemes, then the parameter keys
# after '?' or '&', and the choices of the 0..1 and enum keys).
#
# Self-contained: it needs none of bash-completion's helpers, so it works
# sourced from ~/.bashrc as well as installed in bash-completion's folder.
#
# URIs hold ':', '=' and '&', which bash splits words at (COMP_WORDBREAKS).
# The word being completed is therefore taken whole from COMP_LINE, and each
# candidate loses the part readline will not replace (what precedes the last
# break character) before it goes into COMPREPLY.
#
# Schemes come from `idprime plugins` (the command being completed, run
# once per shell and cached) and fall back to a fixed list when that gives
# nothing.

_idprime_commands="plugins next incr get bench run migrate serve"
_idprime_common_opts="--config --metrics --verbose --help -v -h"
_idprime_bench_opts="--workload --count -n --chunks --rate --seconds
  --trace --strategies --threads --rtt-ms --no-baseline --param --roundtrips --time-limit --json
  --csv --plot --no-progress"
_idprime_serve_opts="--listen --requirepass-file --metrics-listen --metrics --config
  --upstream --counter --max-clients --max-request-bytes --request-timeout-ms
  --idle-timeout-ms --max-counters --workers --verbose --help -v -h"
_idprime_serve_value_opts="--listen --requirepass-file --metrics-listen
  --upstream --counter --max-clients --max-request-bytes --request-timeout-ms
  --idle-timeout-ms --max-counters --workers"
# options that take a value as the next word
_idprime_value_opts="--config --metrics -n --count --workload --chunks --rate
  --seconds --trace --strategies --threads --rtt-ms --param --roundtrips --time-limit --json --csv
  --plot $_idprime_serve_value_opts"
_idprime_fallback_schemes="mem redis memcached sqlite sqlite3 postgresql
  postgres mysql mariadb redis-sentinel redis-cluster"
_idprime_engine_keys="metaprime batch low_watermark adaptive max_batch
  give_back prime timeout_ms prefix"
# engine keys that also exist per counter, as NAME_key
_idprime_counter_keys="batch low_watermark adaptive max_batch"

# 0 when option $1 takes the next word as its value.
_idprime_takes_value() {
    [[ " $_idprime_value_opts " == *[[:space:]]"$1"[[:space:]]* ]]
}

# The options of one command.
_idprime_opts() {
    case $1 in
        next) echo "$_idprime_common_opts --count -n" ;;
        bench) echo "$_idprime_common_opts $_idprime_bench_opts" ;;
        migrate) echo "$_idprime_common_opts --dry-run" ;;
        run) echo "--config --verbose --help -v -h" ;;
        serve) echo "$_idprime_serve_opts" ;;
        plugins | incr | get) echo "$_idprime_common_opts" ;;
    esac
}

# The schemes the plugins serve (cached), else the fixed list.
_idprime_schemes() {
    if [[ -z ${_idprime_scheme_cache+set} ]]; then
        _idprime_scheme_cache=
        local cmd=$1 line
        if [[ -n $cmd ]] && type -P "$cmd" >/dev/null 2>&1; then
            # NAME SCHEMES ABI PATH, after a header line
            while read -r line; do
                line=${line#* }
                line=${line#"${line%%[! ]*}"}
                line=${line%% *}
                _idprime_scheme_cache+=" ${line//,/ }"
            done < <(timeout 3 "$cmd" plugins 2>/dev/null | tail -n +2)
        fi
    fi
    if [[ -n ${_idprime_scheme_cache// /} ]]; then
        echo "$_idprime_scheme_cache"
    else
        echo "$_idprime_fallback_schemes"
    fi
}

# The store's own keys, by scheme.
_idprime_store_keys() {
    case $1 in
        redis) echo "db wait_replicas" ;;
        sqlite | sqlite3) echo "synchronous delay_ms" ;;
        mem) echo "delay_ms" ;;
    esac
}

# Candidates for a URI word $1 (whole, unquoted), one a line.
_idprime_uri() {
    local word=$1 cmd=$2 s
    if [[ $word != *://* ]]; then
        for s in $(_idprime_schemes "$cmd"); do
            [[ $s:// == "$word"* ]] && printf '%s\n' "$s://"
        done
        return
    fi
    [[ $word == *\?* ]] || return
    local scheme=${word%%://*} head=${word%[?&]*} param
    param=${word:${#head}+1}
    head=${word:0:${#head}+1}
    if [[ $param == *=* ]]; then
        local key=${param%%=*} value=${param#*=} v choices=
        case $key in
            metaprime | adaptive | *_adaptive | give_back) choices="0 1" ;;
            synchronous) choices="FULL NORMAL" ;;
        esac
        for v in $choices; do
            [[ $v == "$value"* ]] && printf '%s\n' "$head$key=$v"
        done
        return
    fi
    local k found=0
    for k in $_idprime_engine_keys $(_idprime_store_keys "$scheme"); do
        [[ $k == "$param"* ]] && printf '%s\n' "$head$k=" && found=1
    done
    # NAME_key, when no plain key fits: each '_' typed so far may end the
    # counter's name
    ((found)) && return
    local name rest=$param
    while [[ $rest == *_* ]]; do
        rest=${rest#*_}
        name=${param:0:${#param}-${#rest}}
        for k in $_idprime_counter_keys; do
            [[ $k == "$rest"* ]] && printf '%s\n' "$head$name$k="
        done
    done
}

# Files (only *.$2 and folders when $2 is given) matching $1, one a line.
_idprime_files() {
    if [[ -n ${2-} ]]; then
        compgen -d -- "$1"
        compgen -f -X "!*.$2" -- "$1"
    else
        compgen -f -- "$1"
    fi
}

_idprime() {
    # The words up to the cursor, split at blanks only (COMP_WORDS splits
    # URIs at ':' and '='); quotes stay in place. A blank before the cursor
    # starts an empty word.
    local line words=() cword
    if [[ -n ${COMP_LINE+set} ]]; then
        line=${COMP_LINE:0:${COMP_POINT:-${#COMP_LINE}}}
        read -ra words <<<"$line"
        [[ $line == *[[:blank:]] || ${#words[@]} -eq 0 ]] && words+=("")
    else
        words=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
    fi
    cword=$((${#words[@]} - 1))
    local full=${words[cword]} quote=
    # An open quote: readline completes what follows it, breaks and all.
    if [[ $full == [\'\"]* ]]; then
        quote=${full:0:1}
        full=${full:1}
    fi
    # What readline replaces: the text after the last break character.
    local keep=
    if [[ -z $quote ]]; then
        local breaks=${COMP_WORDBREAKS-$' \t\n"\'><=;|&(:'} i
        for ((i = ${#full} - 1; i >= 0; i--)); do
            if [[ $breaks == *"${full:i:1}"* ]]; then
                keep=${full:0:i+1}
                break
            fi
        done
    fi

    local cmd=${words[1]-} prev=${words[cword-1]-} cands='' nospace=0 files=0
    # which positional this is (options and their values skipped); what
    # follows run's SCRIPT is the script's own
    local i n=0 script=0 w
    for ((i = 2; i < cword; i++)); do
        w=${words[i]}
        if ((script)); then
            n=$((n + 1))
        elif [[ $w == -* ]]; then
            [[ $w != *=* ]] && _idprime_takes_value "$w" && i=$((i + 1))
        else
            n=$((n + 1))
            [[ $cmd == run ]] && script=1
        fi
    done

    if ((cword == 1)); then
        cands=$(compgen -W "$_idprime_commands --help --version" -- "$full")
    elif [[ " $_idprime_commands " != *" $cmd "* ]]; then
        return 0
    elif ((script)); then
        cands=$(_idprime_files "$full") files=1
    elif [[ $full != -* ]] && _idprime_takes_value "$prev"; then
        case $prev in
            --config) cands=$(_idprime_files "$full" lua) files=1 ;;
            --plot) cands=$(_idprime_files "$full" svg) files=1 ;;
            --strategies) cands=$(_idprime_files "$full" lua) files=1 ;;
            --trace) cands=$(_idprime_files "$full" csv) files=1 ;;
            --metrics | --json | --csv | --requirepass-file)
                cands=$(_idprime_files "$full") files=1 ;;
            --upstream) cands=$(compgen -W "redis://" -- "$full") ;;
            --workload)
                cands=$(compgen -W "files burst steady hotpath counters bursty ramp trace" -- "$full") ;;
            --param)
                cands=$(_idprime_uri "mem://?$full" "${words[0]}")
                cands=${cands//mem:\/\/\?/}
                nospace=1 ;;
        esac
    elif [[ $full == -* ]]; then
        cands=$(compgen -W "$(_idprime_opts "$cmd")" -- "$full")
    else
        case $cmd in
            next | incr | get)
                ((n == 0)) && cands=$(_idprime_uri "$full" "${words[0]}") ;;
            migrate)
                ((n < 2)) && cands=$(_idprime_uri "$full" "${words[0]}") ;;
            serve)
                ((n == 0)) && cands=$(_idprime_uri "$full" "${words[0]}") ;;
            bench)
                cands=$(_idprime_uri "$full" "${words[0]}")
                [[ default == "$full"* ]] && cands+=$'\ndefault' ;;
            run) cands=$(_idprime_files "$full" lua) files=1 ;;
        esac
    fi

    COMPREPLY=()
    local c
    while IFS= read -r c; do
        [[ -z $c ]] && continue
        # a URI or key still being built takes no space after it
        [[ $c == *:// || $c == *= ]] && nospace=1
        COMPREPLY+=("${c#"$keep"}")
    done <<<"$cands"
    # compopt (bash 4) applies to this completion only
    if type compopt >/dev/null 2>&1; then
        ((nospace)) && compopt -o nospace 2>/dev/null
        # readline marks folders with '/' and quotes odd file names
        ((files)) && compopt -o filenames 2>/dev/null
    fi
    return 0
}

complete -F _idprime idprime

# Bash completion for varscope, the Varscope admin CLI.
# Use: source client/cli/varscope-completion.bash (or install it as
# /usr/share/bash-completion/completions/varscope).
# Completes commands, options, dtypes, files, and variable and scope names
# (asked from the server with `varscope ls --names`, honouring --server).

_varscope() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local commands="ls tree show find du diagnose get set rm mv export import stats top health checkpoint backup recover restore"
  local global="--server --json --timeout --page-size --help"
  local cmd="" server=() i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      --server)
        server=(--server "${COMP_WORDS[i + 1]}")
        ((i++))
        ;;
      --timeout | --page-size) ((i++)) ;;
      -*) ;;
      *) [[ -z "$cmd" ]] && cmd="${COMP_WORDS[i]}" ;;
    esac
  done

  case "$prev" in
    --server | --timeout | --page-size | --interval | -d | --depth | --value | --shape | --backup-id)
      return 0
      ;;
    --dtype)
      mapfile -t COMPREPLY < <(compgen -W "float32 float64 float16 bfloat16 int8 uint8 int16 int32 int64 bool" -- "$cur")
      return 0
      ;;
    -o | --output | --metadata | --from-npy)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return 0
      ;;
  esac

  if [[ -z "$cmd" ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$commands $global" -- "$cur")
    return 0
  fi

  local options=""
  case "$cmd" in
    ls) options="-r --recursive -d --depth --names" ;;
    tree | du) options="-d --depth" ;;
    show) options="--full" ;;
    find) options="--names" ;;
    diagnose) options="--shape --dtype" ;;
    set) options="--value --from-npy" ;;
    rm) options="-r --recursive -y --yes -n --dry-run" ;;
    export) options="-o --output --metadata" ;;
    import) options="--into --overwrite --metadata" ;;
    stats) options="--interval" ;;
    top) options="--interval --count --limit" ;;
    checkpoint | backup) options="--versions" ;;
    restore) options="--backup-id --list" ;;
  esac
  if [[ "$cur" == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$options $global" -- "$cur")
    return 0
  fi

  case "$cmd" in
    import)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return 0
      ;;
    checkpoint | backup | restore)
      mapfile -t COMPREPLY < <(compgen -d -- "$cur")
      return 0
      ;;
    find | stats | health) return 0 ;;
  esac

  # A variable or scope name: list the scope typed so far.
  local scope=""
  [[ "$cur" == */* ]] && scope="${cur%/*}"
  local names
  names="$("${COMP_WORDS[0]}" "${server[@]}" --timeout 2 ls --names "$scope" 2>/dev/null)"
  mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
  # Scopes end with '/': let the user go on typing inside them.
  if [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == */ ]]; then
    compopt -o nospace 2>/dev/null
  fi
}

complete -F _varscope varscope

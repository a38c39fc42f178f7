# bash completion for shmkit(1): commands, each command's options, and object names.
#
# Commands and options are read from `shmkit --help` and `shmkit help COMMAND`, so they
# never go stale; object names from `shmkit ls` (first column). Installed by `make install`
# into share/bash-completion/completions/shmkit; or `source` this file.

_shmkit_commands()
{
	shmkit --help 2>/dev/null | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }'
	echo help
}

_shmkit_options()
{
	shmkit help "$1" 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u
}

_shmkit_names()
{
	shmkit ls 2>/dev/null | awk 'NR > 1 && $1 != "-" { print $1 }' | sort -u
}

_shmkit()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$(_shmkit_commands) --help --version" -- "$cur"))
		return 0
	fi
	local cmd=${COMP_WORDS[1]}
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_shmkit_options "$cmd")" -- "$cur"))
		return 0
	fi
	# The operand number: words after the command that are not options.
	local i nargs=0
	for ((i = 2; i < COMP_CWORD; i++)); do
		[[ ${COMP_WORDS[i]} == -* ]] || nargs=$((nargs + 1))
	done
	case $prev in
	--backend | -b) COMPREPLY=($(compgen -W "posix sysv" -- "$cur")); return 0 ;;
	--sort | -s) [ "$cmd" = top ] && COMPREPLY=($(compgen -W "rate name" -- "$cur")) && return 0 ;;
	--filter | -f) [ "$cmd" = top ] && COMPREPLY=($(compgen -W "$(_shmkit_names)" -- "$cur")) && return 0 ;;
	--framing) COMPREPLY=($(compgen -W "raw lines len" -- "$cur")); return 0 ;;
	--policy) COMPREPLY=($(compgen -W "block overwrite" -- "$cur")); return 0 ;;
	esac
	case $cmd in
	help) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "$(_shmkit_commands)" -- "$cur")) ;;
	stat | rm | hz | pub | sub)
		COMPREPLY=($(compgen -W "$(_shmkit_names)" -- "$cur")) ;;
	record)
		if [ "$nargs" -eq 0 ]; then
			COMPREPLY=($(compgen -W "$(_shmkit_names)" -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi ;;
	replay)
		if [ "$nargs" -eq 1 ]; then
			COMPREPLY=($(compgen -W "$(_shmkit_names)" -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi ;;
	esac
	return 0
}

complete -F _shmkit shmkit

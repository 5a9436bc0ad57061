#!/usr/bin/env bash
# Every check and test of fepool, as CI runs them (.ci/run calls this and nothing else):
# gofmt, go vet, staticcheck, the unit and integration tests with the race detector, and the
# end-to-end tests against real peers (SIPp, baresip, linphonec, sipsak).
# Installs what is missing: the peers from Debian's packages, staticcheck with go install.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-e2e   skip the end-to-end tests (no peers needed)
set -euo pipefail
cd "$(dirname "$0")/.."

e2e=1
for arg in "$@"; do
	case "$arg" in
	--no-e2e) e2e=0 ;;
	-h | --help)
		sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "scripts/test.sh: unknown argument $arg (see --help)" >&2
		exit 2
		;;
	esac
done

step() { printf '\n==> %s\n' "$*"; }

if ((e2e)); then
	missing=()
	command -v sipp >/dev/null || missing+=(sip-tester)
	command -v baresip >/dev/null || missing+=(baresip-core)
	command -v linphonec >/dev/null || missing+=(linphone-cli)
	command -v sipsak >/dev/null || missing+=(sipsak)
	if ((${#missing[@]})); then
		step "installing ${missing[*]}"
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
fi

gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
if ! command -v staticcheck >/dev/null; then
	step "installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...
go vet -tags e2e ./e2e/

step "staticcheck"
staticcheck ./...
staticcheck -tags e2e ./e2e/

step "go test -race ./..."
go test -race -count=1 ./...

if ((e2e)); then
	step "end-to-end tests (real fepool binary, real peers)"
	go test -tags e2e -count=1 -timeout 15m ./e2e/
fi

step "all checks passed"

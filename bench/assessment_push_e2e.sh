#!/usr/bin/env bash
# assessment_push_e2e: what the assessment aggregates cost a device's push,
# end to end (issue 11's goal: no more than 10% on push throughput).
#
# Runs bench/push_bench (the real fieldsyncd, 8 devices pushing signed
# batches through gRPC, 70% of them visits) in pairs: once with the server's
# defaults (assessment on) and once with `assessment { enabled: false }`
# appended to the config push_bench writes (a wrapper given as --fieldsyncd;
# push_bench itself is unchanged), the order alternating from pair to pair.
# Prints one JSON document: events/s of each run, each pair's ratio
# (off / on: how much faster without the aggregates) and `ratio`, their median.
#
#   bench/assessment_push_e2e.sh BUILD_DIR [PAIRS=3] [push_bench flags...]
# e.g. bench/assessment_push_e2e.sh build/release 3 --seconds=5
set -euo pipefail
build=${1:?usage: assessment_push_e2e.sh BUILD_DIR [PAIRS] [push_bench flags...]}
pairs=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
push_bench="$build/bench/push_bench"
fieldsyncd="$(cd "$build/server" && pwd)/fieldsyncd"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The wrapper: appends the switch to the --config file, then runs fieldsyncd.
cat >"$work/fieldsyncd_reports_off" <<EOF
#!/usr/bin/env bash
for arg in "\$@"; do
  # Once: push_bench restarts the server on the same config (cold-cache pulls).
  case "\$arg" in --config=*) grep -q '^assessment {' "\${arg#--config=}" ||
    printf 'assessment {\n  enabled: false\n}\n' >>"\${arg#--config=}" ;; esac
done
exec "$fieldsyncd" "\$@"
EOF
chmod +x "$work/fieldsyncd_reports_off"

run() {  # $1: on|off; prints fieldsync_events_per_s
  local server=$fieldsyncd
  [[ $1 == off ]] && server="$work/fieldsyncd_reports_off"
  shift
  "$push_bench" --fieldsyncd="$server" "$@" >"$work/out.json" 2>"$work/err.log" ||
    { cat "$work/err.log" >&2; exit 1; }
  grep -o '"fieldsync_events_per_s":[0-9.]*' "$work/out.json" | head -1 | cut -d: -f2
}

on=() off=() ratios=()
for ((p = 0; p < pairs; p++)); do
  if ((p % 2 == 0)); then
    a=$(run on "$@"); b=$(run off "$@")
  else
    b=$(run off "$@"); a=$(run on "$@")
  fi
  on+=("$a") off+=("$b")
  ratios+=("$(awk -v on="$a" -v off="$b" 'BEGIN { printf "%.3f", off / on }')")
  echo "pair $p: on $a events/s, off $b events/s, off/on ${ratios[-1]}" >&2
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
join() { local IFS=,; echo "$*"; }
printf '{"bench": "assessment_push_e2e", "pairs": %d, "events_per_s_reports_on": [%s], ' \
  "$pairs" "$(join "${on[@]}")"
printf '"events_per_s_reports_off": [%s], "pair_ratios_off_over_on": [%s], ' \
  "$(join "${off[@]}")" "$(join "${ratios[@]}")"
printf '"goal": 1.10, "ratio": %s}\n' "$median"

# bench/common.sh — what the bench scripts share; sourced, not run.
#   die MESSAGE...        print "bench/<script>: MESSAGE" on stderr and exit 1
#   print_machine         the cpu line, the thread-related environment and the load average, with a
#                         warning when the machine is not idle (numbers from a busy machine lie)

die() {
  echo "bench/$(basename "$0"): $*" >&2
  exit 1
}

print_machine() {
  local cpu load1 var
  cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
  echo "  cpu                  ${cpu:-unknown}, $(nproc) online"
  for var in OPENBLAS_CORETYPE OMP_NUM_THREADS OPENBLAS_NUM_THREADS OMP_PROC_BIND OMP_PLACES \
    GOMP_CPU_AFFINITY; do
    printf '  %-20s %s\n' "$var" "${!var-<unset>}"
  done
  read -r load1 _ </proc/loadavg
  echo "  load average (1m)    $load1"
  if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    echo "  warning: the machine is not idle; other work will distort these numbers" >&2
  fi
}

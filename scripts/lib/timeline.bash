# shellcheck shell=bash
# The timeline that `make local` and `make pod` print, and their shared verdict. Source it, then:
#
#   timeline_start                 the clock's zero
#   mark EVENT [DETAIL]            one line, stamped with the time since zero
#   fail REASON                    remember a failure; the run goes on to print everything
#   finish TITLE SUCCESS_TEXT      print the timeline, then PASS or FAIL; exits 1 on FAIL

# EPOCHREALTIME came with bash 5.0; macOS still ships bash 3.2 as /bin/bash.
((BASH_VERSINFO[0] >= 5)) || { echo "${0##*/}: needs bash 5 or newer (macOS: brew install bash)" >&2; exit 2; }
# Microseconds since the epoch, from bash itself (no fork), so the marks stay precise. Digits
# only: bash writes the locale's decimal point, which is a comma in de_DE or fr_FR.
now_us() { local t=$EPOCHREALTIME; printf '%s' "${t//[!0-9]/}"; }
# Microseconds as seconds with three decimals.
seconds() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); }

timeline_start() { timeline_zero="$(now_us)" timeline=() failures=(); }
mark() { timeline+=("$(printf '%9s  %-16s %s' "+$(seconds $(($(now_us) - timeline_zero)))s" "$1" "${2:-}")"); }
fail() { failures+=("$1"); }

finish() {
  local total
  total="$(seconds $(($(now_us) - timeline_zero)))"
  printf '\n%s\n' "$1"
  printf '%s\n' "${timeline[@]}"
  if ((${#failures[@]})); then
    printf 'FAIL: %s\n' "${failures[@]}" >&2
    exit 1
  fi
  printf 'PASS: %s after %ss\n' "$2" "$total"
}

#!/bin/sh
# An example `command` model for ekp: exponential decay,
#
#     y(t) = initial * exp(-rate * t),   observed at t = 0, 1, 2, 3, 4.
#
# ekp runs it once per ensemble member, in the member's own folder
# (DIR/iteration_NNN/member_NNN/), as
#
#     model.sh PARAMETERS OUTPUT
#
# (the default arguments; the same paths are in $EKP_PARAMETERS and
# $EKP_OUTPUT, the member number in $EKP_MEMBER, the iteration in
# $EKP_ITERATION). PARAMETERS is a TOML file with one `name = value` line per
# parameter, in physical (constrained) units:
#
#     rate = 0.4987
#     initial = 10.12
#
# and the model writes OUTPUT, a TOML file with one array:
#
#     values = [10.12, 6.13, 3.72, 2.25, 1.37]
#
# A non-zero exit status, no output file, NaN, or the wrong number of values
# all mark the member as failed; what the model prints to stderr is kept in
# the member's stderr.log. Your model can be written in any language: this
# one is POSIX sh and awk so that it runs anywhere.
set -eu
params=${1:-$EKP_PARAMETERS}
out=${2:-$EKP_OUTPUT}

awk -F' *= *' '
    /^[[:space:]]*(#|$)/ { next }
    { p[$1] = $2 + 0 }
    END {
        if (!("rate" in p) || !("initial" in p)) {
            print "model.sh: parameters rate and initial are needed" > "/dev/stderr"
            exit 3
        }
        printf "values = ["
        for (t = 0; t <= 4; t++)
            printf "%s%.17g", (t ? ", " : ""), p["initial"] * exp(-p["rate"] * t)
        print "]"
    }' "$params" >"$out.tmp"
# Write, then rename: a half-written output is never seen.
mv "$out.tmp" "$out"

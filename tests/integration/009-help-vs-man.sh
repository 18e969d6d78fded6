#!/bin/bash
# Every option a verb's --help names is in its man page entry, and every
# option the man page's SYNOPSIS gives a verb is in its --help; the same
# for repvold (tests/tools/helpman.py says which disagree).
. "$(dirname "$0")/lib.sh"
python3 "$TOP/tests/tools/helpman.py" "$REPVOL" "$TOP/man" ||
    fail "repvol --help and man/repvol*.8 disagree (above)"
python3 "$TOP/tests/tools/helpman.py" --daemon "$REPVOLD" "$TOP/man/repvold.8" ||
    fail "repvold --help and man/repvold.8 disagree (above)"

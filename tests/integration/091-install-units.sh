#!/bin/bash
# make install and the systemd units: installed under a PREFIX of the
# test's own, the programs, man pages and units are where they belong,
# the units name the installed programs, and systemd-analyze verify
# accepts every unit (an instance of each template), man pages included
# (it fails a unit whose program or Documentation= page is missing).  A
# repvold started the way repvold@.service starts it (REPVOL_CONFIG with
# data-dir, listen, zone, and only --name on the command line) serves;
# a server file with a misspelt key is refused with its line number.
. "$(dirname "$0")/lib.sh"
require_cmd systemd-analyze make

P=$T/usr
make -s -C "$TOP" install B="$BUILD" PREFIX="$P" >&2
# Every page of man/, in the section its name ends with.
pages=()
for m in "$TOP"/man/*.[578]; do pages+=("share/man/man${m##*.}/${m##*/}"); done
(( ${#pages[@]} >= 20 )) || fail "man/ has only ${#pages[@]} pages"
for f in bin/repvol sbin/repvold "${pages[@]}" lib/systemd/system/repvold@.service \
         lib/systemd/system/repvol-attach@.service \
         lib/systemd/system/repvol-heal.service lib/systemd/system/repvol-heal.timer \
         share/bash-completion/completions/repvol share/bash-completion/completions/repvold; do
    [[ -s $P/$f ]] || fail "make install did not install $f"
done
grep -q "^ExecStart=$P/sbin/repvold --name %i$" "$P/lib/systemd/system/repvold@.service" ||
    fail "repvold@.service does not run the installed repvold"
grep -q "^ExecStart=$P/bin/repvol attach %i " "$P/lib/systemd/system/repvol-attach@.service" ||
    fail "repvol-attach@.service does not run the installed repvol"

mkdir "$T/units"
u=$P/lib/systemd/system
cp "$u/repvold@.service" "$T/units/repvold@s1.service"
cp "$u/repvol-attach@.service" "$T/units/repvol-attach@vol1.service"
cp "$u/repvol-heal.service" "$u/repvol-heal.timer" "$T/units/"
(cd "$T/units" && MANPATH=$P/share/man systemd-analyze verify ./*) ||
    fail "systemd-analyze verify refused the units"

# repvold as repvold@s1 runs it.
port=$(free_port)
cat > "$T/repvold-s1.conf" <<CONF
# a server's own file
data-dir = $T/s1-data
listen   = 127.0.0.1:$port
zone     = az-a
CONF
REPVOL_CONFIG=$T/repvold-s1.conf start_bg "$T/repvold-unit.log" "$P/sbin/repvold" --name s1
pid=$BG_PID
wait_for port_listening "$port"
repvol create v --size 8M --replica "127.0.0.1:$port" >/dev/null
[[ -e $T/s1-data/v.meta ]] || fail "the volume is not in the config's data-dir"
grep -q "name s1, zone az-a" "$T/repvold-unit.log" || fail "repvold did not take zone and name"
repvol delete v >/dev/null
kill_pid "$pid"
echo "lisen = 127.0.0.1:1" >> "$T/repvold-s1.conf"
expect_fail_match 'repvold-s1.conf:5: unknown key "lisen" .*data-dir, listen, advertise, name' \
    env REPVOL_CONFIG="$T/repvold-s1.conf" "$P/sbin/repvold" --name s1
log "ok"

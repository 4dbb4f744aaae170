#!/bin/sh
# The system test's checks, run inside the booted container by
# agrigw-systest.service once the boot is done (tests/service/system-test.sh
# prepares the root).  Everything goes to /systest-out/log, which the host
# reads; the last line is "N passed, N failed".
#
# The installed agrigw.service runs under the container's systemd and
# journald, with a drop-in that adds the MQTT password as a credential and a
# short watchdog.  mosquitto (password required) and agrigw-sim (Modbus TCP on
# 127.0.0.1:1502) run as units beside it; the container has its own network
# namespace with loopback only.
exec >/systest-out/log 2>&1
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH SYSTEMD_PAGER= SYSTEMD_COLORS=0
CONF=/etc/agrigw/agrigw.conf
passed=0
failed=0
t0=$(date +%s)

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
check() {        # check "what" command...
	what=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$what"; else fail "$what"; sed 's/^/    /' /tmp/check.out | head -n 30; fi
}
# wait_for SECONDS command...: poll until the command succeeds or time is up
wait_for() {
	end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.2
	done
}
prop() { systemctl show -p "$1" --value agrigw; }
# a TCP port listening on loopback (/proc/net/tcp: local address, state 0A)
listening() { awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp; }
journal() { journalctl -q --no-pager -u agrigw "$@"; }
# a journal search that must find something
found() { [ -n "$(journal "$@")" ]; }
not_found() { [ -z "$(journal "$@")" ]; }
show_journal() { echo "    journal (last 30):"; journal -n 30 -o short-monotonic | sed 's/^/    /'; }

echo "== boot"
state=$(systemctl is-system-running --wait)
echo "system state: $state"
[ "$state" = running ] || systemctl --failed --no-legend | sed 's/^/    failed unit: /'
check "systemd is up (running or degraded)" [ "$state" = running -o "$state" = degraded ]
check "journald is running" systemctl is-active systemd-journald.service

echo "== the installed unit"
check "systemd-analyze verify agrigw.service prints nothing (--man=no: no man-db here)" \
	sh -c 'out=$(systemd-analyze verify --man=no /lib/systemd/system/agrigw.service 2>&1); echo "$out"; [ -z "$out" ]'
systemd-analyze security agrigw.service >/tmp/security 2>&1
score=$(sed -n 's/.*Overall exposure level for agrigw.service: \([0-9.]*\).*/\1/p' /tmp/security)
check "systemd-analyze security (loaded unit): exposure ${score:-?} is at most 2.0" \
	awk -v s="${score:-99}" 'BEGIN { exit !(s + 0 <= 2.0) }'
check "user agrigw exists (sysusers.d at boot), in group dialout" sh -c 'id agrigw && id -nG agrigw | grep -qw dialout'
check "systemctl enable agrigw" sh -c 'systemctl enable agrigw && systemctl is-enabled agrigw && systemctl disable agrigw'
check "the agrigw user cannot read the password file itself" sh -c '! runuser -u agrigw -- cat /etc/agrigw/mqtt.pass'

echo "== start"
systemctl restart mosquitto
check "mosquitto (password required) listens on 127.0.0.1:1883" wait_for 20 listening 1883
systemctl start agrigw-sim
# device nodes for the device policy checks: ttyS5 (major 4, a serial port with
# no UART behind it) and major 240 (unassigned), both group dialout like real ports
mknod -m 0660 /dev/ttyS5 c 4 69 && chgrp dialout /dev/ttyS5
mknod -m 0660 /dev/agrigw-not-serial c 240 0 && chgrp dialout /dev/agrigw-not-serial
check "agrigw-sim listens on 127.0.0.1:1502" wait_for 20 listening 1502
check "systemctl start agrigw (returns after READY=1)" systemctl start agrigw
check "agrigw is active" [ "$(prop ActiveState)" = active ]
pid=$(prop MainPID)
check "the daemon runs as user agrigw with group dialout" sh -c "
	[ \"\$(stat -c %U /proc/$pid)\" = agrigw ] &&
	grep '^Groups:' /proc/$pid/status | tr ' \t' '\n\n' | grep -qx \"\$(getent group dialout | cut -d: -f3)\""
check "the daemon got the mqtt-password credential" sh -c "tr '\0' '\n' </proc/$pid/environ | grep -q '^CREDENTIALS_DIRECTORY='"
if wait_for 30 sh -c 'systemctl show -p StatusText --value agrigw | grep -q "^2/5 devices answering, broker connected"'; then
	ok "StatusText: $(prop StatusText)"
else
	fail "StatusText never showed the broker connected: '$(prop StatusText)'"
	show_journal
fi
check "telemetry of pond1-do reaches the broker (password from the credential)" sh -c \
	"mosquitto_sub -h 127.0.0.1 -u reader -P \"\$(cat /root/reader.pass)\" -t agrigw/systest/gw01/pond1-do/telemetry \
		-C 1 -W 20 | grep '\"values\"'"

check "StateDirectory: /var/lib/agrigw is agrigw's, mode 750, and holds the store (mode 600, UMask=0077)" sh -c \
	'[ "$(stat -c "%U %a" /var/lib/agrigw)" = "agrigw 750" ] && [ "$(stat -c "%U %a" /var/lib/agrigw/agrigw.db)" = "agrigw 600" ]'

echo "== devices (DevicePolicy=closed, DeviceAllow=char-ttyS ...)"
check "outside the unit, opening the non-serial node fails only for want of a driver" sh -c \
	'! (exec 3<>/dev/agrigw-not-serial) 2>&1 | grep -q "Operation not permitted"'
check "the unit refuses a non-serial character device (Operation not permitted)" \
	wait_for 20 found -g "^bus 'not-serial': open '/dev/agrigw-not-serial': Operation not permitted"
check "the unit lets agrigw open a serial port (ttyS5: no UART, but not refused)" sh -c '
	wait_for() { end=$(($(date +%s) + 20)); until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done; }
	wait_for sh -c "journalctl -q -u agrigw -g \"^bus .serial-s5.: open ./dev/ttyS5.: \" | grep -q ."
	journalctl -q -u agrigw -g "^bus .serial-s5.: open" | tee /dev/stderr | grep -qv "Operation not permitted"'

echo "== journal"
check "the start line is in the journal at priority notice" found -p notice..notice -g "^agrigw .* started: site 'systest'"
check "a silent device is logged as a warning (journalctl -u agrigw -g \"device 'ghost'\")" \
	wait_for 30 found -p warning..warning -g "device 'ghost'.*offline after"
check "journalctl -u agrigw -p warning shows the warning, not the notice lines" sh -c '
	journalctl -q --no-pager -u agrigw -p warning | grep -q "device .ghost.*offline" &&
	! journalctl -q --no-pager -u agrigw -p warning | grep -q "started: site"'
check "no raw <N> prefixes reach the journal" not_found -o cat -g '^<[0-7]>'
check "journalctl -u agrigw -b works" found -b -g started

echo "== watchdog"
n0=$(prop NRestarts)
echo "stopping pid $pid with SIGSTOP (WatchdogSec=$(prop WatchdogUSec))"
kill -STOP "$pid"
if wait_for 60 sh -c "[ \$(systemctl show -p NRestarts --value agrigw) -gt $n0 ] &&
	[ \$(systemctl show -p ActiveState --value agrigw) = active ] &&
	[ \$(systemctl show -p MainPID --value agrigw) != $pid ]"; then
	ok "a SIGSTOPped daemon is restarted by the watchdog (NRestarts $n0 -> $(prop NRestarts), pid $pid -> $(prop MainPID))"
else
	fail "no watchdog restart: NRestarts $(prop NRestarts), state $(prop ActiveState), pid $(prop MainPID)"
	show_journal
fi
check "systemd logged the watchdog timeout" found -g 'Watchdog timeout'
pid=$(prop MainPID)
check "after the restart: telemetry again" sh -c \
	"mosquitto_sub -h 127.0.0.1 -u reader -P \"\$(cat /root/reader.pass)\" -t agrigw/systest/gw01/pond1-temp/telemetry \
		-C 1 -W 20 | grep '\"values\"'"

echo "== reload with a broken configuration"
cp "$CONF" /root/agrigw.conf.good
sed -i -e 's/^\(.*name = "pond1-do";.*\)interval = 1;/\1interval = 0;/' -e 's/^\(.*name = "pond1-temp";.*\)interval = 1;/\1intervall = 1;/' "$CONF"
n0=$(prop NRestarts)
check "systemctl reload agrigw" systemctl reload agrigw
check "the file:line errors are logged at priority err" \
	wait_for 20 found -p err..err -g "^reload: /etc/agrigw/agrigw.conf:[0-9]+: device 'pond1-do': interval"
check "... each of them" found -p err..err -g "^reload: /etc/agrigw/agrigw.conf:[0-9]+: .*intervall"
check "... and that the running configuration stays" found -p err..err -g 'the running configuration stays'
check "still active, same process, no restart" wait_for 10 sh -c "[ \$(systemctl show -p ActiveState --value agrigw) = active ] &&
	[ \$(systemctl show -p MainPID --value agrigw) = $pid ] && [ \$(systemctl show -p NRestarts --value agrigw) = $n0 ]"
check "still publishing" sh -c \
	"mosquitto_sub -h 127.0.0.1 -u reader -P \"\$(cat /root/reader.pass)\" -t agrigw/systest/gw01/pond1-do/telemetry \
		-C 1 -W 20 | grep '\"values\"'"
cp /root/agrigw.conf.good "$CONF"
check "reload with the good file again" systemctl reload agrigw
check "... applied: 'reload: 3 buses (3 kept running), 5 devices'" wait_for 20 found -g 'reload: 3 buses \(3 kept running\), 5 devices'
check "... same process" [ "$(prop MainPID)" = "$pid" ]

echo "== start with a broken configuration"
systemctl stop agrigw
sed -i 's/^\(.*name = "pond1-do";.*\)interval = 1;/\1interval = 0;/' "$CONF"
check "systemctl start agrigw fails" sh -c '! systemctl start agrigw'
# printed before logging starts, without a <N> prefix: SyslogLevel=err makes them errors
check "the start-up file:line errors are in the journal at priority err" \
	found -p err..err -g "^/etc/agrigw/agrigw.conf:[0-9]+: device 'pond1-do': interval"
systemctl stop agrigw
systemctl reset-failed agrigw 2>/dev/null
cp /root/agrigw.conf.good "$CONF"

echo "== a LoadCredential= file that is missing"
# why the installed unit ships its LoadCredential= lines commented out
printf '[Service]\nLoadCredential=platform-token:/etc/agrigw/no-such-file\n' \
	>/etc/systemd/system/agrigw.service.d/20-missing.conf
systemctl daemon-reload
check "systemd 252 refuses to start the unit" sh -c '! systemctl start agrigw'
check "... and says why (status 243/CREDENTIALS)" found -g "Failed to set up credentials"
rm /etc/systemd/system/agrigw.service.d/20-missing.conf
systemctl daemon-reload
systemctl stop agrigw
systemctl reset-failed agrigw 2>/dev/null

echo "== stop"
check "systemctl start agrigw (good file)" systemctl start agrigw
wait_for 20 sh -c 'systemctl show -p StatusText --value agrigw | grep -q "broker connected"'
check "systemctl stop agrigw" systemctl stop agrigw
check "a clean stop: exit status 0, result success" sh -c \
	"[ \$(systemctl show -p ExecMainStatus --value agrigw) = 0 ] && [ \$(systemctl show -p Result --value agrigw) = success ]"
check "the offline status was published on stop" sh -c \
	"mosquitto_sub -h 127.0.0.1 -u reader -P \"\$(cat /root/reader.pass)\" -t agrigw/systest/gw01/status -C 1 -W 5 |
		grep '\"online\":false'"

echo "== agrigw journal (last 40 lines)"
journal -n 40 -o short-monotonic
echo "in-container checks took $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"

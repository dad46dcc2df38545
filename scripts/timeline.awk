# Turns the facts that timeline.sh extracts into a timeline and a verdict; see timeline.sh
# for the input lines, the modes and the exit status. Plain POSIX awk: no gawk extensions.

# Seconds since 1970 for an RFC 3339 UTC time as the API server writes it
# (2006-01-02T15:04:05Z), or -1 for anything else. Days from the civil date follow
# Howard Hinnant's days_from_civil, restricted to years after 0.
function epoch(ts,    y, m, d, era, yoe, doy, doe) {
	if (ts !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z$/)
		return -1
	y = substr(ts, 1, 4) + 0
	m = substr(ts, 6, 2) + 0
	d = substr(ts, 9, 2) + 0
	if (m < 1 || m > 12 || d < 1 || d > 31)
		return -1
	if (m <= 2)
		y--
	era = int(y / 400)
	yoe = y - era * 400
	doy = int((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
	doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
	return (era * 146097 + doe - 719468) * 86400 \
		+ substr(ts, 12, 2) * 3600 + substr(ts, 15, 2) * 60 + substr(ts, 18, 2)
}

function die(msg) {
	print "timeline: " msg | "cat 1>&2"
	status = 2
	exit 2
}

# Seconds from the Job's start to ts, or dies: a time that cannot be read is bad input.
function rel(ts,    t) {
	t = epoch(ts)
	if (t < 0)
		die("not an RFC 3339 UTC time: " ts)
	return t - t0
}

function at(ts, text) {
	printf "%7s  %s\n", "+" rel(ts) "s", text
}

function note(text) {
	printf "%7s  %s\n", "", text
}

function fail(msg) {
	print "FAIL: " msg
	failed++
}

function has_started(c) {
	return (c in state) && started[c] != "-"
}

function has_exited(c) {
	return state[c] == "terminated"
}

# Checks that container c ran and exited 0.
function want_exit0(c) {
	if (!has_exited(c))
		fail(c " has not exited (" ((c in state) ? state[c] : "no status") ")")
	else if (code[c] != 0)
		fail(c " exited with code " code[c])
}

$1 == "job" { jobs++; job = $2; jstart = $3; jcompleted = $4; next }
$1 == "cond" { if ($3 == "True") { cond[$2] = $4; condtime[$2] = $5 }; next }
$1 == "pod" { pods++; pod = $2; next }
$1 == "role" { role[$2] = $3; next }
$1 == "state" { state[$2] = $3; started[$2] = $4; finished[$2] = $5; code[$2] = $6; next }
NF > 0 { die("unexpected line from the template: " $0) }

END {
	if (status)
		exit status
	if (jobs != 1)
		die("expected one Job in the input, found " jobs + 0)
	if (pods != 1)
		die("expected one Pod in the input, found " pods + 0)
	if (!("app" in role) || !("sidecar" in role))
		die("the Pod has no containers named app and sidecar")
	t0 = epoch(jstart)
	if (t0 < 0)
		die("the Job has no start time: " jstart)

	if ("Complete" in cond) {
		end = jcompleted != "-" ? jcompleted : condtime["Complete"]
		outcome = "Complete"
	} else if ("Failed" in cond) {
		end = condtime["Failed"]
		outcome = "Failed"
	}

	printf "job/%s  pod/%s\n", job, pod
	at(jstart, "job started")
	if (has_started("sidecar"))
		at(started["sidecar"], sprintf("%-16s %s", "sidecar started", \
			role["sidecar"] == "sidecar" ? "native sidecar: init container, restartPolicy Always" \
			: role["sidecar"] == "main" ? "regular container" : "plain init container"))
	if (has_started("app"))
		at(started["app"], "app started")
	if (has_exited("app"))
		at(finished["app"], sprintf("%-16s exit code %s", "app exited", code["app"]))
	if (has_exited("sidecar"))
		at(finished["sidecar"], sprintf("%-16s exit code %s", "sidecar exited", code["sidecar"]))
	else if (has_started("sidecar"))
		note("sidecar still running")
	if (outcome == "Failed")
		at(end, sprintf("%-16s reason %s, after %ds", "job Failed", cond["Failed"], rel(end)))
	else if (outcome == "Complete")
		at(end, sprintf("%-16s after %ds", "job Complete", rel(end)))
	else
		note("job still running")

	if (mode == "native") {
		if (role["sidecar"] != "sidecar")
			fail("sidecar is not a native sidecar (an init container with restartPolicy: Always)")
		if (outcome != "Complete")
			fail("job did not complete" (outcome == "Failed" ? " (Failed: " cond["Failed"] ")" : ""))
		want_exit0("app")
		want_exit0("sidecar")
		if (has_started("app") && has_started("sidecar") && rel(started["app"]) < rel(started["sidecar"]))
			fail("app started before the sidecar")
		if (has_exited("app") && has_exited("sidecar") && rel(finished["sidecar"]) < rel(finished["app"]))
			fail("sidecar exited before the app")
		if (!failed)
			printf "PASS: job Complete after %ds; app and sidecar both exited 0\n", rel(end)
	} else {
		if (role["sidecar"] != "main")
			fail("sidecar is not a regular container")
		if (outcome == "Complete")
			fail("job completed, but the legacy Job must end in DeadlineExceeded")
		else if (outcome != "Failed")
			fail("job has not failed yet")
		else if (cond["Failed"] != "DeadlineExceeded")
			fail("job failed with " cond["Failed"] ", expected DeadlineExceeded")
		want_exit0("app")
		if (!failed)
			printf "PASS: app exited 0 after %ds, yet the job Failed with DeadlineExceeded after %ds: the sidecar kept its Pod running\n", \
				rel(finished["app"]), rel(end)
	}
	exit failed ? 1 : 0
}

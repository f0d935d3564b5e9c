# deploy/prometheus passes Prometheus's own checks: the configuration, the
# recording and alert rules, and the alerts' unit tests; and every alert has
# a test that it fires, a test that it does not, and a section in
# docs/operations.md (its runbook).
. tests/e2e-lib.sh
command -v promtool >/dev/null || fail "promtool missing: scripts/setup --test installs prometheus"
d=deploy/prometheus
expect_status 0 promtool check config "$d/prometheus.yml"
expect_status 0 promtool check rules "$d"/rules/*.yml
expect_status 0 promtool test rules "$d/tests/alerts-test.yml"
alerts=$(awk '$1 == "-" && $2 == "alert:" { print $3 }' "$d/rules/semdex-alerts.yml")
[ "$(echo "$alerts" | wc -l)" -ge 9 ] || fail "expected the alerts of issue 14, found: $alerts"
for a in $alerts; do
  # A firing test lists exp_alerts under a multi-line entry; a silent one is
  # the one-line form with exp_alerts: [].
  grep -q "alertname: $a\$" "$d/tests/alerts-test.yml" || fail "$a: no test where it fires"
  grep -q "alertname: $a, exp_alerts: \[\]" "$d/tests/alerts-test.yml" || fail "$a: no test where it stays silent"
  grep -qi "^### $a\$" docs/operations.md || fail "$a: no section in docs/operations.md"
  grep -q "runbook: docs/operations.md#$(echo "$a" | tr A-Z a-z)\$" "$d/rules/semdex-alerts.yml" || fail "$a: runbook link"
done

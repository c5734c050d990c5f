package app

import (
	"os"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every alert in deploy/k8s/alerts.yaml watches a series hrsync really exports.
func TestDeployAlertsUseRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../../../deploy/k8s/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					Expr  string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("deploy/k8s/alerts.yaml: %v", err)
	}
	m := NewMetrics()
	m.gapEvents.WithLabelValues("hr").Add(0) // vectors are gathered once they have a child
	m.deadLettered.WithLabelValues("hr").Add(0)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	// The series read at scrape time (opsCollector) need a stack: take their names.
	for _, d := range opsDescs {
		exported[regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(d.String())[1]] = true
	}
	seen := map[string]bool{}
	for _, g := range doc.Spec.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			for _, name := range regexp.MustCompile(`hrsync_[a-z_]+`).FindAllString(r.Expr, -1) {
				if !exported[name] {
					t.Errorf("alert %s watches %s, which hrsync does not export", r.Alert, name)
				}
			}
		}
	}
	for alert, what := range map[string]string{
		"HrsyncStreamGap":          "events lost before hrsync recorded them (hrsync_stream_gap_events_total)",
		"HrsyncConvergeBacklog":    "the age of the oldest due worker",
		"HrsyncConsumerBehind":     "JetStream consumer pending",
		"HrsyncHoldOpen":           "open holds",
		"HrsyncErasureKeyUnusable": "an unusable erasure key",
		"HrsyncReconcileStale":     "the last successful reconciliation",
	} {
		if !seen[alert] {
			t.Errorf("no alert %s on %s", alert, what)
		}
	}
}

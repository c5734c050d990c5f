package deploy_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// TestAlertRulesParse: the groups of deploy/k8s/alerts.yaml are a Prometheus rule
// file as Prometheus itself reads one (rulefmt: every expression parses as PromQL,
// every template of a label or annotation parses, no unknown field, durations
// valid), so that an operator can load them as they are.
func TestAlertRulesParse(t *testing.T) {
	raw, err := os.ReadFile("k8s/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	groups, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	rgs, errs := rulefmt.Parse(groups, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("deploy/k8s/alerts.yaml: %v", err)
	}
	n := 0
	for _, g := range rgs.Groups {
		n += len(g.Rules)
	}
	if n < 10 {
		t.Errorf("deploy/k8s/alerts.yaml holds %d rules; want the gap, dead-letter, quarantine and operator alerts", n)
	}
	// A broken expression is caught: the check is not vacuous.
	bad := strings.Replace(string(groups), "> 900", "> > 900", 1)
	if _, errs := rulefmt.Parse([]byte(bad), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) == 0 {
		t.Error("a broken expression parsed")
	}
}

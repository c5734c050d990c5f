// Package deploy_test checks the deployment files: the Kubernetes manifests
// decode strictly into the Kubernetes API types and mount what they reference,
// docker-compose.yml has healthchecks each service waits on, and the Dockerfile
// stamps a version and gets the files it builds from. No cluster and no Docker
// engine are needed. cmd/hrsync/internal/app/deploy_test.go connects to a NATS
// server running deploy/nats/nats-server.conf with the credentials the manifests
// give hrsync.
package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestGlobs are the manifests: the ones "kubectl apply -f deploy/k8s/"
// applies, and the example Secrets the operator replaces with real ones.
var manifestGlobs = []string{"k8s/*.yaml", "k8s/examples/*.yaml"}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule, which k8s.io/api
// does not hold: the fields the Prometheus Operator's CRD defines for what
// deploy/k8s/alerts.yaml uses, so that a typo in it fails as elsewhere.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// newObject returns an empty object of the API type of apiVersion and kind.
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 Service":
		return &corev1.Service{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &prometheusRule{}
	}
	return nil
}

// manifests are the decoded objects by kind and name.
type manifests struct {
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	rules        map[string]*prometheusRule
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifest decodes every document of one file strictly: an unknown field,
// a duplicate key or a value of the wrong type is an error.
func decodeManifest(name string, b []byte) ([]any, error) {
	var out []any
	for i, doc := range docSeparator.Split(string(b), -1) {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s document %d: %v", name, i+1, err)
		}
		if head == (metav1.TypeMeta{}) {
			if strings.TrimSpace(stripComments(doc)) != "" {
				return nil, fmt.Errorf("%s document %d has no apiVersion and kind", name, i+1)
			}
			continue // only comments
		}
		obj := newObject(head.APIVersion, head.Kind)
		if obj == nil {
			return nil, fmt.Errorf("%s document %d: %s %s is not a kind this test knows; add it to newObject", name, i+1, head.APIVersion, head.Kind)
		}
		// As the API server decodes: YAML without duplicate keys, then JSON with
		// field names matched case-sensitively and unknown fields refused.
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %v", name, i+1, head.Kind, err)
		}
		strict, err := kjson.UnmarshalStrict(js, obj)
		if err == nil {
			err = errors.Join(strict...)
		}
		if err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %v", name, i+1, head.Kind, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// loadManifests decodes every manifest, failing t on the first error.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, deployments: map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{}, rules: map[string]*prometheusRule{}}
	var files []string
	for _, g := range manifestGlobs {
		fs, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	if len(files) < 3 {
		t.Fatalf("manifests %v: want deploy/k8s/hrsync.yaml, nats.yaml and examples/secrets.yaml at least", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifest(f, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			var name string
			var seen bool
			switch o := o.(type) {
			case *corev1.ConfigMap:
				name, seen = o.Name, m.configMaps[o.Name] != nil
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				name, seen = o.Name, m.secrets[o.Name] != nil
				m.secrets[o.Name] = o
			case *corev1.Service:
				name, seen = o.Name, m.services[o.Name] != nil
				m.services[o.Name] = o
			case *appsv1.Deployment:
				name, seen = o.Name, m.deployments[o.Name] != nil
				m.deployments[o.Name] = o
			case *appsv1.StatefulSet:
				name, seen = o.Name, m.statefulSets[o.Name] != nil
				m.statefulSets[o.Name] = o
			case *prometheusRule:
				name, seen = o.Name, m.rules[o.Name] != nil
				m.rules[o.Name] = o
			}
			if name == "" || seen {
				t.Fatalf("%s: a %T without a name, or declared twice (%q)", f, o, name)
			}
		}
	}
	return m
}

// Strictness is real: a typo, a field of the wrong type or an unknown kind fails.
func TestManifestDecodingIsStrict(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringdata: {a: b}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: nine}]}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"metadata: {name: x}\n",
	} {
		if _, err := decodeManifest("bad.yaml", []byte(bad)); err == nil {
			t.Errorf("decoded without error:\n%s", bad)
		}
	}
	if objs, err := decodeManifest("ok.yaml", []byte("# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")); err != nil || len(objs) != 1 {
		t.Errorf("a comment document and a ConfigMap: %v, %v", objs, err)
	}
}

// workload is a Deployment's or a StatefulSet's pod template, with its claims.
type workload struct {
	kind, name string
	labels     map[string]string
	pod        corev1.PodSpec
	claims     []string // volumeClaimTemplates
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Spec.Template.Labels, d.Spec.Template.Spec, nil})
	}
	for _, s := range m.statefulSets {
		var claims []string
		for _, c := range s.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		ws = append(ws, workload{"StatefulSet", s.Name, s.Spec.Template.Labels, s.Spec.Template.Spec, claims})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.kind+a.name, b.kind+b.name) })
	return ws
}

// secretKeys returns the keys a Secret declares (data and stringData).
func secretKeys(s *corev1.Secret) map[string]bool {
	keys := map[string]bool{}
	for k := range s.Data {
		keys[k] = true
	}
	for k := range s.StringData {
		keys[k] = true
	}
	return keys
}

func configMapKeys(c *corev1.ConfigMap) map[string]bool {
	keys := map[string]bool{}
	for k := range c.Data {
		keys[k] = true
	}
	for k := range c.BinaryData {
		keys[k] = true
	}
	return keys
}

// check returns what is wrong with the references of w: Secrets, ConfigMaps and
// their keys, volumes and their mounts, named ports.
func (m *manifests) check(w workload) []string {
	var errs []string
	bad := func(format string, args ...any) {
		errs = append(errs, w.kind+" "+w.name+": "+fmt.Sprintf(format, args...))
	}
	secretKey := func(where, name, key string, optional *bool) {
		s := m.secrets[name]
		switch {
		case s == nil:
			bad("%s: Secret %q is not declared in deploy/k8s (declare it, or an example of it in deploy/k8s/examples)", where, name)
		case key != "" && !secretKeys(s)[key] && (optional == nil || !*optional):
			bad("%s: Secret %q has no key %q", where, name, key)
		}
	}
	configKey := func(where, name, key string, optional *bool) {
		c := m.configMaps[name]
		switch {
		case c == nil && (optional == nil || !*optional):
			bad("%s: ConfigMap %q is not declared in deploy/k8s", where, name)
		case c != nil && key != "" && !configMapKeys(c)[key] && (optional == nil || !*optional):
			bad("%s: ConfigMap %q has no key %q", where, name, key)
		}
	}
	volumes := map[string]bool{}
	for _, v := range w.pod.Volumes {
		volumes[v.Name] = true
		switch {
		case v.Secret != nil:
			secretKey("volume "+v.Name, v.Secret.SecretName, "", v.Secret.Optional)
			for _, it := range v.Secret.Items {
				secretKey("volume "+v.Name, v.Secret.SecretName, it.Key, v.Secret.Optional)
			}
		case v.ConfigMap != nil:
			configKey("volume "+v.Name, v.ConfigMap.Name, "", v.ConfigMap.Optional)
			for _, it := range v.ConfigMap.Items {
				configKey("volume "+v.Name, v.ConfigMap.Name, it.Key, v.ConfigMap.Optional)
			}
		case v.EmptyDir != nil, v.PersistentVolumeClaim != nil:
		default:
			bad("volume %s: a kind of volume this test does not check; add it", v.Name)
		}
	}
	for _, c := range w.claims {
		volumes[c] = true
	}
	mounted := map[string]bool{}
	for _, c := range append(slices.Clone(w.pod.InitContainers), w.pod.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				secretKey("container "+c.Name+" env "+e.Name, r.Name, r.Key, r.Optional)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				configKey("container "+c.Name+" env "+e.Name, r.Name, r.Key, r.Optional)
			}
		}
		for _, e := range c.EnvFrom {
			if r := e.SecretRef; r != nil && (r.Optional == nil || !*r.Optional) {
				secretKey("container "+c.Name+" envFrom", r.Name, "", nil)
			}
			if r := e.ConfigMapRef; r != nil {
				configKey("container "+c.Name+" envFrom", r.Name, "", r.Optional)
			}
		}
		for _, vm := range c.VolumeMounts {
			mounted[vm.Name] = true
			if !volumes[vm.Name] {
				bad("container %s mounts volume %q, which the pod does not declare", c.Name, vm.Name)
			}
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" && !ports[p.HTTPGet.Port.StrVal] {
				bad("container %s probes port %q, which it does not declare", c.Name, p.HTTPGet.Port.StrVal)
			}
		}
	}
	for v := range volumes {
		if !mounted[v] {
			bad("volume %q is mounted by no container", v)
		}
	}
	return errs
}

// Every Secret, ConfigMap, key and volume a workload references is declared,
// and every Service reaches a workload's named port.
func TestManifestReferences(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	ws := m.workloads()
	if len(ws) < 2 {
		t.Fatalf("workloads %v: want hrsync's Deployment and NATS's StatefulSet", ws)
	}
	for _, w := range ws {
		for _, e := range m.check(w) {
			t.Error(e)
		}
	}
	for _, s := range m.services {
		var target *workload
		for i, w := range ws {
			if len(s.Spec.Selector) > 0 && matches(s.Spec.Selector, w.labels) {
				target = &ws[i]
			}
		}
		if target == nil {
			t.Errorf("Service %s selects %v: no workload has those labels", s.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" && containerPort(target.pod, p.TargetPort.StrVal) == 0 {
				t.Errorf("Service %s port %s targets %q, which %s %s does not declare", s.Name, p.Name, p.TargetPort.StrVal, target.kind, target.name)
			}
		}
	}
	// The rules alert on series hrsync exports (cmd/hrsync/internal/app/metrics.go,
	// and opsmetrics.go for the series read at scrape time).
	var metrics []byte
	for _, f := range []string{"metrics.go", "opsmetrics.go"} {
		b, err := os.ReadFile("../cmd/hrsync/internal/app/" + f)
		if err != nil {
			t.Fatal(err)
		}
		metrics = append(metrics, b...)
	}
	series := regexp.MustCompile(`hrsync_[a-z_]+`)
	for _, r := range m.rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				for _, s := range series.FindAllString(rule.Expr, -1) {
					if !strings.Contains(string(metrics), `Name: "`+s+`"`) && !strings.Contains(string(metrics), `NewDesc("`+s+`"`) {
						t.Errorf("alert %s uses %s, which hrsync does not export", rule.Alert, s)
					}
				}
			}
		}
	}
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func containerPort(pod corev1.PodSpec, name string) int32 {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// mountOf returns the mount of c that holds file p (the longest mount path that
// is a parent of p), and the file's path inside it.
func mountOf(c corev1.Container, p string) (corev1.VolumeMount, string, bool) {
	var best corev1.VolumeMount
	var rel string
	found := false
	for _, vm := range c.VolumeMounts {
		if r, ok := strings.CutPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/"); ok || p == vm.MountPath {
			if !found || len(vm.MountPath) > len(best.MountPath) {
				best, rel, found = vm, r, true
			}
		}
	}
	return best, rel, found
}

func volumeByName(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

// writable reports whether c can write under dir: a read-write mount of an
// emptyDir or a claim, or anywhere if the root filesystem is writable.
func writable(w workload, c corev1.Container, dir string) bool {
	vm, _, ok := mountOf(c, dir)
	if !ok {
		return c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem
	}
	if vm.ReadOnly {
		return false
	}
	if slices.Contains(w.claims, vm.Name) {
		return true
	}
	v := volumeByName(w.pod, vm.Name)
	return v != nil && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil)
}

// fileIn returns what is wrong with file p as container c of w sees it: nothing
// mounted there, or a Secret or ConfigMap without that key; nil if it is there
// (or on a writable volume, where hrsync may create it).
func (m *manifests) fileIn(w workload, c corev1.Container, p string) error {
	vm, rel, ok := mountOf(c, p)
	if !ok {
		return fmt.Errorf("%s: nothing is mounted there", p)
	}
	if vm.SubPath != "" {
		return fmt.Errorf("%s: mount %s uses subPath, which this test does not resolve", p, vm.Name)
	}
	v := volumeByName(w.pod, vm.Name)
	if v == nil {
		return nil // a claim template: writable
	}
	keyOf := func(items []corev1.KeyToPath) string {
		if len(items) == 0 {
			return rel
		}
		for _, it := range items {
			if it.Path == rel {
				return it.Key
			}
		}
		return ""
	}
	switch {
	case v.Secret != nil:
		s := m.secrets[v.Secret.SecretName]
		if k := keyOf(v.Secret.Items); s == nil || k == "" || !secretKeys(s)[k] {
			return fmt.Errorf("%s: Secret %q (volume %s) puts no key there", p, v.Secret.SecretName, vm.Name)
		}
	case v.ConfigMap != nil:
		c := m.configMaps[v.ConfigMap.Name]
		if k := keyOf(v.ConfigMap.Items); c == nil || k == "" || !configMapKeys(c)[k] {
			return fmt.Errorf("%s: ConfigMap %q (volume %s) puts no key there", p, v.ConfigMap.Name, vm.Name)
		}
	}
	return nil
}

// configFiles returns the values of the *_file settings in an hrsync
// configuration file (nats.password_file, lms.ca_file, ...).
func configFiles(t *testing.T, text string) map[string]string {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("hrsync configuration: %v", err)
	}
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(prefix+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", prefix, i), x)
			}
		case string:
			if strings.HasSuffix(prefix, "_file") {
				out[strings.TrimPrefix(prefix, ".")] = v
			}
		}
	}
	walk("", doc)
	return out
}

func (m *manifests) hrsync(t *testing.T) (workload, corev1.Container) {
	t.Helper()
	for _, w := range m.workloads() {
		for _, c := range w.pod.Containers {
			if c.Name == "hrsync" {
				return w, c
			}
		}
	}
	t.Fatal("no workload runs a container named hrsync")
	return workload{}, corev1.Container{}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// hrsync can run from the manifest: the files it is pointed at are mounted, what
// it writes lands on a writable volume, the variables it is given are ones it
// reads, and it reaches NATS at a Service.
func TestManifestHrsyncContainer(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	w, c := m.hrsync(t)
	// The configuration file is a mounted ConfigMap key.
	cfg := flagValue(c.Args, "--config")
	vm, rel, _ := mountOf(c, cfg)
	v := volumeByName(w.pod, vm.Name)
	if err := m.fileIn(w, c, cfg); cfg == "" || err != nil || v == nil || v.ConfigMap == nil || len(v.ConfigMap.Items) > 0 {
		t.Fatalf("--config %q: want a key of a mounted ConfigMap: %v", cfg, err)
	}
	// The files the configuration names (the NATS password) are mounted too.
	files := configFiles(t, m.configMaps[v.ConfigMap.Name].Data[rel])
	if files["nats.password_file"] == "" {
		t.Error("the configuration gives hrsync no NATS password file; deploy/nats/nats-server.conf wants one")
	}
	for setting, p := range files {
		if err := m.fileIn(w, c, p); err != nil {
			t.Errorf("configuration %s: %v", setting, err)
		}
	}
	// Reports land in the working directory (relative default paths), /tmp holds
	// roster uploads, and absolute paths hrsync is given must be writable too.
	if c.WorkingDir == "" || !writable(w, c, c.WorkingDir) {
		t.Errorf("workingDir %q is not on a writable volume: the reports of cleanup, reconcile and feed offboard go there", c.WorkingDir)
	}
	if !writable(w, c, "/tmp") {
		t.Error("/tmp is not writable: roster uploads are spooled there")
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if wd := imageWorkdir(dockerfile); wd != c.WorkingDir {
		t.Errorf("the image's WORKDIR %q and the manifest's workingDir %q differ", wd, c.WorkingDir)
	}
	sources := hrsyncSources(t)
	for _, e := range c.Env {
		if !strings.Contains(sources, `"`+e.Name+`"`) {
			t.Errorf("env %s: hrsync reads no such variable (no %q in cmd/hrsync)", e.Name, e.Name)
		}
		if e.Name == "HRSYNC_RECONCILE_OUT" && !writable(w, c, e.Value) {
			t.Errorf("HRSYNC_RECONCILE_OUT %s is not on a writable volume", e.Value)
		}
		if strings.HasPrefix(e.Value, "/") {
			if err := m.fileIn(w, c, e.Value); err != nil {
				t.Errorf("env %s: %v", e.Name, err)
			}
		}
		if e.Name == "NATS_URL" {
			u, err := url.Parse(e.Value)
			if err != nil {
				t.Fatalf("NATS_URL %q: %v", e.Value, err)
			}
			svc := m.services[u.Hostname()]
			if svc == nil {
				t.Errorf("NATS_URL %s: no Service %q", e.Value, u.Hostname())
				continue
			}
			found := false
			for _, p := range svc.Spec.Ports {
				found = found || net.JoinHostPort(u.Hostname(), fmt.Sprintf("%d", p.Port)) == u.Host
			}
			if !found {
				t.Errorf("NATS_URL %s: Service %s has no such port", e.Value, svc.Name)
			}
		}
	}
	for _, name := range []string{"HRSYNC_ERASURE_KEY", "HRSYNC_ADMIN_TOKEN", "DATABASE_URL", "LMS_TOKEN"} {
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s must come from a Secret", name)
		}
	}
	if sc := w.pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("hrsync's pod may run as root")
	}
}

// hrsyncSources returns the text of hrsync's Go sources (not its tests).
func hrsyncSources(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir("../cmd/hrsync", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		b.Write(src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The NATS ConfigMap is deploy/nats/nats-server.conf, and the server gets every
// password that file reads from the environment.
func TestManifestNATSConfig(t *testing.T) { // not parallel: t.Setenv
	m := loadManifests(t)
	conf, err := os.ReadFile("nats/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	var nats *workload
	for _, w := range m.workloads() {
		if w.kind == "StatefulSet" && w.name == "nats" {
			nats = &w
		}
	}
	if nats == nil {
		t.Fatal("no StatefulSet nats")
	}
	c := nats.pod.Containers[0]
	cfg := flagValue(c.Args, "-c")
	vm, rel, ok := mountOf(c, cfg)
	v := volumeByName(nats.pod, vm.Name)
	if !ok || v == nil || v.ConfigMap == nil {
		t.Fatalf("nats -c %q is not in a mounted ConfigMap", cfg)
	}
	if got := m.configMaps[v.ConfigMap.Name].Data[rel]; got != string(conf) {
		t.Errorf("ConfigMap %s key %s differs from deploy/nats/nats-server.conf: copy the file into deploy/k8s/nats.yaml", v.ConfigMap.Name, rel)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}
	// Variable references: unquoted $NAME outside comments ("$JS.API.>" is a subject).
	code := regexp.MustCompile(`(?m)#.*$|"[^"]*"`).ReplaceAllString(string(conf), "")
	refs := regexp.MustCompile(`\$([A-Z_][A-Z0-9_]*)`).FindAllStringSubmatch(code, -1)
	if len(refs) < 4 {
		t.Fatalf("found %d variable references in nats-server.conf, want the 4 passwords", len(refs))
	}
	for _, ref := range refs {
		if !env[ref[1]] {
			t.Errorf("nats-server.conf reads $%s, which the nats container does not get from a Secret", ref[1])
		}
	}
	// Its data directory is the claim, and the probes' monitoring port is the
	// configuration's, on loopback.
	opts := &server.Options{}
	for name := range env {
		t.Setenv(name, "x") // only to parse; TestDeployNATSCredentials uses the real values
	}
	if err := opts.ProcessConfigFile("nats/nats-server.conf"); err != nil {
		t.Fatal(err)
	}
	if !writable(*nats, c, opts.StoreDir) || !strings.HasPrefix(opts.StoreDir, "/data/") {
		t.Errorf("jetstream store_dir %s is not on the data claim", opts.StoreDir)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.Exec == nil || !strings.Contains(strings.Join(p.Exec.Command, " "), fmt.Sprintf("http://%s:%d/healthz", opts.HTTPHost, opts.HTTPPort)) {
			t.Errorf("nats probe %+v: want a wget of the monitoring /healthz at %s:%d", p, opts.HTTPHost, opts.HTTPPort)
		}
	}
}

// loadCompose loads docker-compose.yml with the compose-spec parser.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	path, err := filepath.Abs("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithName("hrsync"), cli.WithWorkingDirectory(filepath.Dir(path)))
	if err != nil {
		t.Fatal(err)
	}
	proj, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return proj
}

// Every compose service has a healthcheck that asks the right port, and hrsync
// starts only once what it needs is healthy.
func TestComposeHealthchecks(t *testing.T) {
	t.Parallel()
	proj := loadCompose(t)
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`).FindSubmatch(dockerfile)
	if entry == nil {
		t.Fatal("the Dockerfile has no exec-form ENTRYPOINT")
	}
	bin := string(entry[1])
	for name, svc := range proj.Services {
		if svc.HealthCheck == nil || len(svc.HealthCheck.Test) < 2 || svc.HealthCheck.Disable {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
	hr := proj.Services["hrsync"]
	for dep := range proj.Services {
		if dep == "hrsync" {
			continue
		}
		if d, ok := hr.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("hrsync must wait for a healthy %s, got %+v", dep, hr.DependsOn[dep])
		}
	}
	port := func(svc types.ServiceConfig, flag string) string {
		_, p, err := net.SplitHostPort(flagValue(svc.Command, flag))
		if err != nil {
			t.Fatalf("%s %s: %v", svc.Name, flag, err)
		}
		return p
	}
	want := map[string][]string{
		"hrsync": {"CMD", bin, "healthcheck", "http://127.0.0.1:" + port(hr, "--admin-addr") + "/readyz"},
		"sandbox-lms": {"CMD", bin, "healthcheck", "--token", flagValue(proj.Services["sandbox-lms"].Command, "--token"),
			"http://127.0.0.1:" + port(proj.Services["sandbox-lms"], "--addr") + "/scim/v2/ServiceProviderConfig"},
	}
	for name, w := range want {
		if got := []string(proj.Services[name].HealthCheck.Test); !slices.Equal(got, w) {
			t.Errorf("%s healthcheck %q, want %q", name, got, w)
		}
	}
	// NATS: its configuration keeps monitoring on the container's loopback, where
	// the healthcheck's wget asks.
	nats := proj.Services["nats"]
	if len(nats.Configs) != 1 || !slices.Contains(nats.Command, nats.Configs[0].Target) {
		t.Fatalf("nats: want one config, passed with -c: %+v %v", nats.Configs, nats.Command)
	}
	conf := filepath.Join(t.TempDir(), "dev.conf")
	if err := os.WriteFile(conf, []byte(proj.Configs[nats.Configs[0].Source].Content), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigFile(conf); err != nil {
		t.Fatalf("nats config %s: %v", nats.Configs[0].Source, err)
	}
	if !opts.JetStream || opts.HTTPHost != "127.0.0.1" || opts.HTTPPort == 0 {
		t.Errorf("nats config: jetstream %v, monitoring %s:%d; want JetStream and monitoring on loopback", opts.JetStream, opts.HTTPHost, opts.HTTPPort)
	}
	if test := strings.Join(nats.HealthCheck.Test, " "); !strings.HasPrefix(test, "CMD wget ") ||
		!strings.Contains(test, fmt.Sprintf("http://127.0.0.1:%d/healthz", opts.HTTPPort)) || !strings.Contains(nats.Image, "alpine") {
		t.Errorf("nats healthcheck %q on image %s: want the alpine image's wget of /healthz", test, nats.Image)
	}
	// Reports land in the image's working directory: a volume.
	wd := imageWorkdir(dockerfile)
	if wd == "" || !slices.ContainsFunc(hr.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == wd
	}) {
		t.Errorf("hrsync mounts no volume on the image's working directory %s, where reports go", wd)
	}
}

// imageWorkdir returns the final stage's WORKDIR.
func imageWorkdir(dockerfile []byte) string {
	all := regexp.MustCompile(`(?m)^WORKDIR\s+(\S+)`).FindAllSubmatch(dockerfile, -1)
	if len(all) == 0 {
		return ""
	}
	return string(all[len(all)-1][1])
}

// The image stamps the version it is built as.
func TestDockerfileVersion(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !regexp.MustCompile(`(?m)^ARG VERSION\b`).MatchString(s) {
		t.Error("the Dockerfile has no ARG VERSION")
	}
	if !strings.Contains(s, `-ldflags "-s -w -X main.version=${VERSION}"`) {
		t.Error(`the Dockerfile does not build with -ldflags "-s -w -X main.version=${VERSION}"`)
	}
}

// dockerignore is a .dockerignore file: its patterns, in order.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

// parseDockerignore reads the patterns the way Docker does: one per line, # for
// comments, ! to re-include, * and ? within a path element, ** across them,
// anchored at the context's root, and a pattern that matches a directory
// matches everything in it. Character classes are not supported (the test
// fails rather than guess).
func parseDockerignore(t *testing.T, text string) dockerignore {
	t.Helper()
	var d dockerignore
	for line := range strings.SplitSeq(text, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		if strings.ContainsAny(p, `[\`) {
			t.Fatalf("pattern %q: character classes and escapes are not supported by this test", p)
		}
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return d
}

// excludes reports whether file (slash-separated, relative to the context) is
// left out of the context.
func (d dockerignore) excludes(file string) bool {
	excluded := false
	for _, p := range d {
		for dir := file; dir != "."; dir = path.Dir(dir) {
			if p.re.MatchString(dir) {
				excluded = !p.negate
				break
			}
		}
	}
	return excluded
}

// The build context keeps what the build reads (the module's Go files and what
// they embed) and leaves out the rest.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	d := parseDockerignore(t, string(b))
	needed := 0
	err = filepath.WalkDir("..", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, ".."+string(filepath.Separator)))
		if e.IsDir() {
			if e.Name() == ".git" || e.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		need := rel == "go.mod" || rel == "go.sum" ||
			(strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")) ||
			strings.HasPrefix(rel, "events/schemas/") || strings.HasPrefix(rel, "store/migrations/")
		if need {
			needed++
			if d.excludes(rel) {
				t.Errorf("Dockerfile.dockerignore leaves out %s, which the build needs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if needed < 50 {
		t.Fatalf("found %d files the build needs; the walk is broken", needed)
	}
	for _, left := range []string{".git/config", "docs/design.md", "README.md", "testdata/events/x.json", "events/testdata/x",
		"events/consume_test.go", "deploy/k8s/hrsync.yaml", "docker-compose.yml", "hrsync.db", "reconcile-20260101T000000Z/drift.csv"} {
		if !d.excludes(left) {
			t.Errorf("Dockerfile.dockerignore keeps %s in the build context", left)
		}
	}
}

package app

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// deployDir is the repository's deploy/ from this package.
const deployDir = "../../../../deploy"

// k8sObjects are the Deployments, StatefulSets, Secrets and ConfigMaps of
// deploy/k8s (and its examples), by name. deploy/deploy_test.go decodes them
// strictly and checks their references; this test uses their values.
type k8sObjects struct {
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
}

func loadK8s(t *testing.T) k8sObjects {
	t.Helper()
	o := k8sObjects{map[string]*appsv1.Deployment{}, map[string]*appsv1.StatefulSet{}, map[string]*corev1.Secret{},
		map[string]*corev1.ConfigMap{}}
	files, _ := filepath.Glob(filepath.Join(deployDir, "k8s", "*.yaml"))
	examples, _ := filepath.Glob(filepath.Join(deployDir, "k8s", "examples", "*.yaml"))
	for _, f := range append(files, examples...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
			var head metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var obj interface{ GetName() string }
			switch head.Kind {
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "Secret":
				obj = &corev1.Secret{}
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			default:
				continue
			}
			if err := yaml.Unmarshal([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch v := obj.(type) {
			case *appsv1.Deployment:
				o.deployments[v.Name] = v
			case *appsv1.StatefulSet:
				o.statefulSets[v.Name] = v
			case *corev1.Secret:
				o.secrets[v.Name] = v
			case *corev1.ConfigMap:
				o.configMaps[v.Name] = v
			}
		}
	}
	return o
}

// secretValue returns key of Secret name (stringData or data), failing t if absent.
func (o k8sObjects) secretValue(t *testing.T, name, key string) string {
	t.Helper()
	s := o.secrets[name]
	if s == nil {
		t.Fatalf("no Secret %q in deploy/k8s", name)
	}
	if v, ok := s.StringData[key]; ok {
		return v
	}
	if v, ok := s.Data[key]; ok {
		return string(v)
	}
	t.Fatalf("Secret %q has no key %q", name, key)
	return ""
}

// envOf returns the environment container c gets: values, and Secret keys.
func (o k8sObjects) envOf(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			if r.Optional != nil && *r.Optional && o.secrets[r.Name] != nil && o.secrets[r.Name].StringData[r.Key] == "" {
				continue
			}
			env[e.Name] = o.secretValue(t, r.Name, r.Key)
		}
	}
	return env
}

// materialise writes the files the Secret and ConfigMap volumes of pod put into
// container c under root, as the kubelet would under /.
func (o k8sObjects) materialise(t *testing.T, pod corev1.PodSpec, c corev1.Container, root string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name {
				continue
			}
			files := map[string]string{}
			switch {
			case v.Secret != nil:
				s := o.secrets[v.Secret.SecretName]
				for k := range s.StringData {
					files[k] = s.StringData[k]
				}
				for k := range s.Data {
					files[k] = string(s.Data[k])
				}
				files = project(files, v.Secret.Items)
			case v.ConfigMap != nil:
				files = project(o.configMaps[v.ConfigMap.Name].Data, v.ConfigMap.Items)
			}
			for name, content := range files {
				p := filepath.Join(root, vm.MountPath, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// project applies a volume's items (key -> path) to keys; without items, every key.
func project(keys map[string]string, items []corev1.KeyToPath) map[string]string {
	if len(items) == 0 {
		return keys
	}
	out := map[string]string{}
	for _, it := range items {
		if v, ok := keys[it.Key]; ok {
			out[it.Path] = v
		}
	}
	return out
}

// under returns p inside root, for a path the container sees as absolute.
func under(root, p string) string {
	if p == "" {
		return ""
	}
	return filepath.Join(root, p)
}

// deployRecorder keeps facts and dead letters in memory.
type deployRecorder struct {
	mu          sync.Mutex
	facts, dead int
}

func (r *deployRecorder) RecordFacts(_ context.Context, f []connector.Fact) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.facts += len(f)
	return len(f), nil
}

func (r *deployRecorder) DeadLetter(context.Context, connector.DeadLetter) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead++
	return int64(r.dead), nil
}

func (r *deployRecorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.facts, r.dead
}

// deploy/nats/nats-server.conf, run with the passwords deploy/k8s/nats.yaml gives
// it, lets hrsync in with exactly the settings deploy/k8s/hrsync.yaml gives it
// (nats: in its configuration file, the password file mounted from the Secret),
// read through NATSSettings as "hrsync run" reads them; and hrsync's user can do
// its work there: manage the streams, consume, ack and terminate.
func TestDeployNATSCredentials(t *testing.T) { // not parallel: t.Setenv
	k := loadK8s(t)

	// The NATS server, with the environment its StatefulSet gets.
	sts := k.statefulSets["nats"]
	if sts == nil {
		t.Fatal("no StatefulSet nats in deploy/k8s")
	}
	for name, v := range k.envOf(t, sts.Spec.Template.Spec.Containers[0]) {
		t.Setenv(name, v)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigFile(filepath.Join(deployDir, "nats", "nats-server.conf")); err != nil {
		t.Fatalf("deploy/nats/nats-server.conf: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", server.RANDOM_PORT, 0, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}

	// hrsync's settings, as its Deployment gives them.
	dep := k.deployments["hrsync"]
	if dep == nil {
		t.Fatal("no Deployment hrsync in deploy/k8s")
	}
	pod := dep.Spec.Template.Spec
	var c corev1.Container
	for _, x := range pod.Containers {
		if x.Name == "hrsync" {
			c = x
		}
	}
	root := t.TempDir()
	k.materialise(t, pod, c, root)
	cfgPath := ""
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		}
	}
	fc, err := LoadConfigFile(under(root, cfgPath))
	if err != nil {
		t.Fatalf("hrsync's configuration file %s: %v", cfgPath, err)
	}
	env := k.envOf(t, c)
	if env["NATS_URL"] != "nats://nats:4222" {
		t.Fatalf("NATS_URL %q; this test stands in for the Service nats:4222", env["NATS_URL"])
	}
	set := fc.NATS.Settings().Over(NATSSettings{URL: ns.ClientURL(), CredsFile: under(root, env["NATS_CREDS"])})
	set.PasswordFile, set.TokenFile, set.NKeyFile = under(root, set.PasswordFile), under(root, set.TokenFile), under(root, set.NKeyFile)
	set.CAFile, set.CertFile, set.KeyFile = under(root, set.CAFile), under(root, set.CertFile), under(root, set.KeyFile)
	if set.Auth() != "user hrsync" {
		t.Errorf("hrsync authenticates as %q; deploy/nats/nats-server.conf has the user hrsync", set.Auth())
	}
	nc, err := set.Connect(nats.Name("hrsync"), nats.CustomInboxPrefix(events.ConnectorInboxPrefix), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("hrsync with the manifests' credentials: %v", err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var violations []string
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, err.Error())
	})

	// What hrsync does with it: the feeds' streams, the consumer, acks and terminations.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	feeds, stream, err := FeedsAndStream(fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureStreams(ctx, js, stream, feeds.Names()); err != nil {
		t.Fatalf("hrsync's user cannot manage its streams: %v", err)
	}
	rec := &deployRecorder{}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- events.Consume(cctx, js, &events.Decoder{Feeds: feeds}, rec, events.ConsumerConfig{StreamPrefix: stream.Prefix})
	}()
	feed := feeds.Names()[0]
	good, err := events.Encode(events.Event{Feed: feed, Kind: connector.KindHired, ID: "evt-1", Source: feeds[feed].Source,
		Time: time.Now().UTC(), Data: events.Data{WorkerID: "w-1", Email: "ann@example.com", Effective: "2026-12-01"}}, events.Structured)
	if err != nil {
		t.Fatal(err)
	}
	// hrsync publishes too: roster uploads through its admin API.
	for _, m := range []*nats.Msg{good, {Subject: events.SubjectPrefix + feed + ".hired", Data: []byte("not json")}} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("hrsync's user cannot publish to feed %s: %v", feed, err)
		}
	}
	waitFor(t, 10*time.Second, "one fact recorded and one dead letter", func() (bool, string) {
		f, d := rec.counts()
		return f == 1 && d == 1, "not yet"
	})
	waitFor(t, 10*time.Second, "the consumer settled (acks and terminations allowed)", func() (bool, string) {
		cons, err := js.Consumer(ctx, stream.Name(feed), events.DefaultDurable)
		if err != nil {
			return false, err.Error()
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0, "pending"
	})
	stop()
	if err := <-done; err != nil {
		t.Errorf("Consume: %v", err)
	}
	mu.Lock()
	if len(violations) > 0 {
		t.Errorf("the server refused hrsync: %v", violations)
	}
	mu.Unlock()

	// Every other user of the configuration gets in with its password from the
	// Secret, and a wrong password is refused.
	for _, u := range opts.Users {
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(u.Username, u.Password), nats.MaxReconnects(0))
		if err != nil || u.Password == "" || strings.HasPrefix(u.Password, "$") {
			t.Errorf("user %s with its password from the Secret: %v", u.Username, err)
			continue
		}
		nc.Close()
	}
	if len(opts.Users) < 4 {
		t.Errorf("deploy/nats/nats-server.conf has %d users, want hrsync and the three feeds", len(opts.Users))
	}
	wrong := set
	wrong.PasswordFile = writeFile(t, t.TempDir(), "password", "guess")
	if nc, err := wrong.Connect(nats.MaxReconnects(0)); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Errorf("hrsync with a wrong password: %v; want an authorization error", err)
	}
}

// Package kubernetes has no code: its tests check the manifests beside them.
// Every YAML document is decoded strictly, the way the API server's strict
// field validation would (kubectl apply --validate=strict): unknown,
// duplicate or wrongly cased fields fail, into the official k8s.io/api types,
// or, for the PodMonitor, the Agones GameServer and the Kustomization, which
// k8s.io/api does not define, into small local types that mirror the
// documented fields used, with the GameServer's pod template decoded as a
// core/v1 PodTemplateSpec.
//
// Then the invariants a reviewer would check by eye: playerguard's security
// context, probes on the pg-ops port, secrets only through the Secret, a
// grace period longer than the drain, the PodMonitor selecting the pods, and
// playerguard itself accepting each manifest's configuration (-check-config).
// The fleet tier's example (fleet_test.go) has checks of its own: its Redis
// and its ACL, run against a real redis-server where one is installed.
//
// This is its own module so that k8s.io/api stays out of playerguard's
// go.mod: run it with (cd deploy/kubernetes && go test ./...).
package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// defaultDrainTimeout is playerguard's -drain-timeout default; the deploy
// package's TestDrainTimeoutDefault ties it to docs/configuration.md.
const defaultDrainTimeout = 15 * time.Second

// The Secret every manifest reads, and the example that shows its shape.
const (
	secretName    = "playerguard"
	secretExample = "examples/secret-example.yaml"
)

// podMonitor mirrors the fields of monitoring.coreos.com/v1 PodMonitor that
// these manifests use (prometheus-operator's API reference).
type podMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		JobLabel            string `json:"jobLabel,omitempty"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			HonorLabels   bool   `json:"honorLabels,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// gameServer mirrors the fields of agones.dev/v1 GameServer that these
// manifests use (agones.dev's GameServer reference); the pod template is the
// real core/v1 type.
type gameServer struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Container string `json:"container,omitempty"`
		Ports     []struct {
			Name          string `json:"name"`
			Range         string `json:"range,omitempty"`
			PortPolicy    string `json:"portPolicy,omitempty"`
			Container     string `json:"container,omitempty"`
			ContainerPort int32  `json:"containerPort,omitempty"`
			HostPort      int32  `json:"hostPort,omitempty"`
			Protocol      string `json:"protocol,omitempty"`
		} `json:"ports,omitempty"`
		Health *struct {
			Disabled            bool  `json:"disabled,omitempty"`
			InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
			PeriodSeconds       int32 `json:"periodSeconds,omitempty"`
			FailureThreshold    int32 `json:"failureThreshold,omitempty"`
		} `json:"health,omitempty"`
		Scheduling string                 `json:"scheduling,omitempty"`
		Template   corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

// kustomization mirrors the kustomize.config.k8s.io/v1beta1 fields used.
type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Resources       []string `json:"resources,omitempty"`
	Components      []string `json:"components,omitempty"`
	Namespace       string   `json:"namespace,omitempty"`
	Images          []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// kinds are the types a manifest may hold, by apiVersion and kind. Anything
// else fails: add its type here first.
var kinds = map[string]func() any{
	"apps/v1 Deployment":                            func() any { return new(appsv1.Deployment) },
	"apps/v1 StatefulSet":                           func() any { return new(appsv1.StatefulSet) },
	"apps/v1 DaemonSet":                             func() any { return new(appsv1.DaemonSet) },
	"v1 Secret":                                     func() any { return new(corev1.Secret) },
	"v1 ConfigMap":                                  func() any { return new(corev1.ConfigMap) },
	"v1 Service":                                    func() any { return new(corev1.Service) },
	"v1 ServiceAccount":                             func() any { return new(corev1.ServiceAccount) },
	"policy/v1 PodDisruptionBudget":                 func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1 NetworkPolicy":            func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1 PodMonitor":           func() any { return new(podMonitor) },
	"agones.dev/v1 GameServer":                      func() any { return new(gameServer) },
	"kustomize.config.k8s.io/v1beta1 Kustomization": func() any { return new(kustomization) },
}

// object is one decoded YAML document.
type object struct {
	file string // relative to deploy/kubernetes
	doc  int    // 1-based document number in the file
	kind string // "apiVersion kind"
	obj  any
	raw  []byte // the document as JSON
}

func (o object) String() string { return fmt.Sprintf("%s (document %d, %s)", o.file, o.doc, o.kind) }

// decodeStrict decodes one YAML document into the type its apiVersion and
// kind name, failing on unknown, duplicate or wrongly cased fields.
func decodeStrict(doc []byte) (kind string, obj any, raw []byte, err error) {
	raw, err = yaml.YAMLToJSONStrict(doc) // duplicate keys fail here
	if err != nil {
		return "", nil, nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return "", nil, nil, err
	}
	kind = tm.APIVersion + " " + tm.Kind
	newObj, ok := kinds[kind]
	if !ok {
		return kind, nil, nil, fmt.Errorf("no type known for apiVersion %q kind %q (add it to kinds)", tm.APIVersion, tm.Kind)
	}
	obj = newObj()
	strict, err := kjson.UnmarshalStrict(raw, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return kind, nil, nil, err
	}
	if len(strict) > 0 {
		return kind, nil, nil, errors.Join(strict...)
	}
	return kind, obj, raw, nil
}

// decodeAll splits a YAML stream into documents and decodes each strictly.
func decodeAll(name string, data []byte) ([]object, error) {
	var out []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %v", name, n, err)
		}
		if isBlank(doc) {
			continue
		}
		kind, obj, raw, err := decodeStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d (%s): %v", name, n, kind, err)
		}
		out = append(out, object{file: name, doc: n, kind: kind, obj: obj, raw: raw})
	}
}

// isBlank reports whether a YAML document holds only comments and space.
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// manifests lists every YAML file under deploy/kubernetes.
func manifests(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, filepath.ToSlash(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d manifests: %v", len(files), files)
	}
	return files
}

var loadAll = sync.OnceValues(func() ([]object, error) {
	var all []object
	var errs []error
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := decodeAll(filepath.ToSlash(path), data)
		errs = append(errs, err)
		all = append(all, objs...)
		return nil
	})
	return all, errors.Join(append(errs, err)...)
})

// load decodes every manifest, failing the test on the first that does not
// decode strictly.
func load(t *testing.T) []object {
	t.Helper()
	all, err := loadAll()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestManifestsDecodeStrictly: every document of every manifest decodes
// strictly into its type.
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := load(t)
	seen := map[string]bool{}
	for _, o := range objs {
		seen[o.file] = true
	}
	for _, f := range manifests(t) {
		if !seen[f] {
			t.Errorf("%s holds no Kubernetes object", f)
		}
	}
}

// TestStrictDecodeCatches feeds decodeStrict the mistakes a hand-edited
// manifest makes and expects each to fail.
func TestStrictDecodeCatches(t *testing.T) {
	f := func(name, doc, want string) {
		t.Helper()
		_, _, _, err := decodeStrict([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", name, want, err)
		}
	}
	const head = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"
	f("unknown field", head+"spec:\n  replica: 1\n", `unknown field "spec.replica"`)
	f("wrong case", head+"spec:\n  Replicas: 1\n", "Replicas")
	f("duplicate key", head+"spec:\n  replicas: 1\n  replicas: 2\n", "replicas")
	f("wrong type", head+"spec:\n  replicas: one\n", "replicas")
	f("misplaced probe", head+"spec:\n  template:\n    spec:\n      containers:\n        - name: a\n          readinessProbe:\n            path: /readyz\n", `unknown field "spec.template.spec.containers[0].readinessProbe.path"`)
	f("bad quantity", head+"spec:\n  template:\n    spec:\n      containers:\n        - name: a\n          resources:\n            limits:\n              memory: 256MB!\n", "quantities must match")
	f("unknown kind", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n", "no type known")
	f("podmonitor field", "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata:\n  name: x\nspec:\n  podMetricsEndpoints:\n    - targetPort: pg-ops\n", "targetPort")
	f("gameserver template", "apiVersion: agones.dev/v1\nkind: GameServer\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          imagePolicy: Always\n", "imagePolicy")
}

// withoutPlayerguard are the files whose workloads run no playerguard: the
// fleet tier's Redis. Every other workload must hold one.
var withoutPlayerguard = map[string]bool{fleetRedis: true}

// pod is one pod template holding playerguard.
type pod struct {
	from   object
	meta   metav1.ObjectMeta
	spec   corev1.PodSpec
	pg     corev1.Container
	native bool // in initContainers
}

// workload is one object with a pod template.
type workload struct {
	object
	tmpl *corev1.PodTemplateSpec
}

// templates are the objects with a pod template, in order.
func templates(objs []object) []workload {
	var out []workload
	for _, o := range objs {
		var tmpl *corev1.PodTemplateSpec
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			tmpl = &v.Spec.Template
		case *appsv1.StatefulSet:
			tmpl = &v.Spec.Template
		case *appsv1.DaemonSet:
			tmpl = &v.Spec.Template
		case *gameServer:
			tmpl = &v.Spec.Template
		default:
			continue
		}
		out = append(out, workload{o, tmpl})
	}
	return out
}

func pods(t *testing.T, objs []object) []pod {
	t.Helper()
	var out []pod
	for _, w := range templates(objs) {
		o, tmpl := w.object, w.tmpl
		p := pod{from: o, meta: tmpl.ObjectMeta, spec: tmpl.Spec}
		found := 0
		for _, c := range tmpl.Spec.InitContainers {
			if c.Name == "playerguard" {
				p.pg, p.native = c, true
				found++
			}
		}
		for _, c := range tmpl.Spec.Containers {
			if c.Name == "playerguard" {
				p.pg = c
				found++
			}
		}
		if found == 0 && withoutPlayerguard[o.file] {
			continue
		}
		if found != 1 {
			t.Errorf("%s: %d containers named playerguard, want 1", o, found)
			continue
		}
		out = append(out, p)
	}
	return out
}

func envOf(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// drainTimeout is the container's PLAYERGUARD_DRAIN_TIMEOUT, or the default.
func drainTimeout(c corev1.Container) (time.Duration, error) {
	if e, ok := envOf(c, "PLAYERGUARD_DRAIN_TIMEOUT"); ok {
		return time.ParseDuration(e.Value)
	}
	return defaultDrainTimeout, nil
}

// checkPod returns every problem with one pod's playerguard.
func checkPod(p pod) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	c := p.pg

	if p.native && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
		bad("playerguard is an init container without restartPolicy: Always: it never exits, so the pod would never start")
	}
	if !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
		bad("image %q: pin a release tag or digest, not latest", c.Image)
	}

	// Security context: the container's, or the pod's where the field
	// exists there.
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	psc := p.spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		bad("securityContext.readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("securityContext.allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		bad("securityContext.privileged is true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		bad("securityContext.capabilities.drop lacks ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		bad("securityContext.capabilities.add %v: playerguard needs none", sc.Capabilities.Add)
	}
	if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		bad("securityContext.runAsNonRoot is not true")
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid != 65532 {
		bad("securityContext.runAsUser is not 65532 (the image's nonroot user)")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("securityContext.seccompProfile.type is not RuntimeDefault")
	}

	// The ops port, named for the scrape configuration, and the probes on it.
	opsPort := int32(0)
	for _, port := range c.Ports {
		if port.Name == "pg-ops" {
			opsPort = port.ContainerPort
		}
	}
	if opsPort == 0 {
		bad("no container port named pg-ops (the Prometheus scrape configuration keys on that name)")
	}
	probe := func(name string, pr *corev1.Probe, paths ...string) {
		switch {
		case pr == nil:
			bad("no %s", name)
		case pr.HTTPGet == nil:
			bad("%s is not an httpGet", name)
		case !slices.Contains(paths, pr.HTTPGet.Path):
			bad("%s path %q: want %s", name, pr.HTTPGet.Path, strings.Join(paths, " or "))
		case pr.HTTPGet.Port.String() != "pg-ops":
			bad("%s port %q: want pg-ops", name, pr.HTTPGet.Port.String())
		}
	}
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	probe("livenessProbe", c.LivenessProbe, "/healthz")
	probe("startupProbe", c.StartupProbe, "/readyz", "/healthz")

	// Listeners: ops reachable from the kubelet and Prometheus on the port
	// declared; the API on loopback.
	if e, ok := envOf(c, "PLAYERGUARD_OPS_LISTEN"); !ok {
		bad("PLAYERGUARD_OPS_LISTEN unset: the ops listener would be on 127.0.0.1, out of the kubelet's and Prometheus' reach")
	} else if host, port, _ := strings.Cut(e.Value, ":"); (host != "0.0.0.0" && host != "" && host != "[::]") || port != fmt.Sprint(opsPort) {
		bad("PLAYERGUARD_OPS_LISTEN=%s: want 0.0.0.0:%d, the pg-ops port on every interface", e.Value, opsPort)
	}
	if e, ok := envOf(c, "PLAYERGUARD_LISTEN"); ok && !strings.HasPrefix(e.Value, "127.0.0.1:") {
		bad("PLAYERGUARD_LISTEN=%s: the validation API stays on loopback, shared by the pod's containers", e.Value)
	}
	for _, name := range []string{"PLAYERGUARD_UPSTREAM", "PLAYERGUARD_APP_ID"} {
		if e, ok := envOf(c, name); !ok || e.Value == "" {
			bad("%s unset", name)
		}
	}

	// Secrets: two from the Secret as variables, the admin token as a file
	// from the same Secret.
	for _, s := range []struct{ env, key string }{{"PLAYERGUARD_APP_SECRET", "app-secret"}, {"PLAYERGUARD_ADMIN_KEY", "admin-key"}} {
		e, ok := envOf(c, s.env)
		switch {
		case !ok:
			bad("%s unset", s.env)
		case e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil:
			bad("%s is not from a secretKeyRef", s.env)
		case e.ValueFrom.SecretKeyRef.Name != secretName || e.ValueFrom.SecretKeyRef.Key != s.key:
			bad("%s reads %s/%s, want %s/%s", s.env, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, secretName, s.key)
		}
	}
	tokenFile := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "-admin-token-file="); ok {
			tokenFile = v
		}
	}
	if tokenFile == "" {
		bad("no -admin-token-file=<path> argument (the admin token as a mounted file)")
	} else if !secretFileMounted(p, tokenFile, "admin-token") {
		bad("-admin-token-file=%s is not key admin-token of Secret %s mounted read-only in playerguard", tokenFile, secretName)
	}

	// Resources, and a Go soft memory limit below the hard one.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		bad("resources.requests needs cpu and memory")
	}
	if lim.Memory().IsZero() {
		bad("resources.limits.memory unset")
	} else if lim.Memory().Cmp(*req.Memory()) < 0 {
		bad("resources.limits.memory %s below requests %s", lim.Memory(), req.Memory())
	}
	if e, ok := envOf(c, "GOMEMLIMIT"); ok {
		q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
		switch {
		case err != nil:
			bad("GOMEMLIMIT=%s: %v", e.Value, err)
		case lim.Memory().IsZero() || q.Cmp(*lim.Memory()) >= 0:
			bad("GOMEMLIMIT=%s is not below resources.limits.memory %s", e.Value, lim.Memory())
		}
	}

	// Pod: the grace period outlasts the drain; no service links.
	drain, err := drainTimeout(c)
	if err != nil {
		bad("PLAYERGUARD_DRAIN_TIMEOUT: %v", err)
	}
	if g := p.spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
		bad("terminationGracePeriodSeconds must be above playerguard's drain timeout (%s), or the kubelet kills it mid-drain", drain)
	}
	if p.spec.EnableServiceLinks == nil || *p.spec.EnableServiceLinks {
		bad("enableServiceLinks is not false: a Service named playerguard would inject PLAYERGUARD_SERVICE_HOST and the like, which playerguard refuses as unknown settings")
	}
	return problems
}

// secretFileMounted reports whether path, in playerguard, is key of the
// Secret, through a read-only secret volume mount.
func secretFileMounted(p pod, path, key string) bool {
	for _, m := range p.pg.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok || !m.ReadOnly {
			continue
		}
		for _, v := range p.spec.Volumes {
			if v.Name != m.Name || v.Secret == nil || v.Secret.SecretName != secretName {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return rel == key
			}
			for _, it := range v.Secret.Items {
				if it.Key == key && it.Path == rel {
					return true
				}
			}
		}
	}
	return false
}

// TestPlayerguardContainers checks every pod template that runs playerguard.
func TestPlayerguardContainers(t *testing.T) {
	ps := pods(t, load(t))
	files := map[string]bool{}
	for _, p := range ps {
		files[p.from.file] = true
		for _, problem := range checkPod(p) {
			t.Errorf("%s: %s", p.from, problem)
		}
	}
	for _, want := range []string{"gameserver-deployment.yaml", "examples/gameserver-deployment-classic.yaml", "examples/agones-gameserver.yaml", fleetGameserver} {
		if !files[want] {
			t.Errorf("%s: no pod template with a playerguard container", want)
		}
	}
	// Native in the base and for Agones, classic in the classic example.
	for _, p := range ps {
		if want := !strings.Contains(p.from.file, "classic"); p.native != want {
			t.Errorf("%s: playerguard native sidecar = %v, want %v", p.from, p.native, want)
		}
	}
	// The fleet tier's settings are in its example only.
	for _, p := range ps {
		if inFleet, c := strings.HasPrefix(p.from.file, fleetDir), withoutFleet(p.pg); !inFleet && !reflect.DeepEqual(c, p.pg) {
			t.Errorf("%s: fleet tier settings (PLAYERGUARD_REDIS_*, PLAYERGUARD_FLEET_*, -redis-*, -fleet-*) outside %s", p.from, fleetDir)
		}
	}
	// The examples configure playerguard identically, but for being native
	// and for the fleet tier's settings.
	for _, p := range ps[1:] {
		a, b := withoutFleet(ps[0].pg), withoutFleet(p.pg)
		a.RestartPolicy, b.RestartPolicy = nil, nil
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.MarshalIndent(a, "", "  ")
			jb, _ := json.MarshalIndent(b, "", "  ")
			t.Errorf("the playerguard container in %s differs from the one in %s:\n%s\n%s", p.from, ps[0].from, jb, ja)
		}
	}
}

// TestPlayerguardChecksCatch breaks the base Deployment's playerguard in one
// way at a time and expects checkPod to say so.
func TestPlayerguardChecksCatch(t *testing.T) {
	var base pod
	for _, p := range pods(t, load(t)) {
		if p.from.file == "gameserver-deployment.yaml" {
			base = p
		}
	}
	if base.pg.Name == "" {
		t.Fatal("no playerguard in gameserver-deployment.yaml")
	}
	f := func(name, want string, mutate func(p *pod)) {
		t.Helper()
		var p pod
		// A deep copy through JSON, so that a mutation does not leak.
		b, _ := json.Marshal(base.spec)
		if err := json.Unmarshal(b, &p.spec); err != nil {
			t.Fatal(err)
		}
		p.from, p.native = base.from, base.native
		for _, c := range p.spec.InitContainers {
			if c.Name == "playerguard" {
				p.pg = c
			}
		}
		mutate(&p)
		for _, problem := range checkPod(p) {
			if strings.Contains(problem, want) {
				return
			}
		}
		t.Errorf("%s: want a problem containing %q, got %q", name, want, checkPod(p))
	}
	no, yes := false, true
	f("init without Always", "never exits", func(p *pod) { p.pg.RestartPolicy = nil })
	f("latest", "latest", func(p *pod) { p.pg.Image = "registry.example.com/playerguard:latest" })
	f("writable root", "readOnlyRootFilesystem", func(p *pod) { p.pg.SecurityContext.ReadOnlyRootFilesystem = &no })
	f("escalation", "allowPrivilegeEscalation", func(p *pod) { p.pg.SecurityContext.AllowPrivilegeEscalation = nil })
	f("privileged", "privileged", func(p *pod) { p.pg.SecurityContext.Privileged = &yes })
	f("capabilities", "drop lacks ALL", func(p *pod) { p.pg.SecurityContext.Capabilities.Drop = []corev1.Capability{"NET_RAW"} })
	f("add capability", "capabilities.add", func(p *pod) { p.pg.SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"} })
	f("root allowed", "runAsNonRoot", func(p *pod) { p.pg.SecurityContext.RunAsNonRoot = nil })
	f("other uid", "runAsUser", func(p *pod) { uid := int64(1000); p.pg.SecurityContext.RunAsUser = &uid })
	f("no seccomp", "seccompProfile", func(p *pod) { p.pg.SecurityContext.SeccompProfile = nil })
	f("port renamed", "pg-ops (the Prometheus", func(p *pod) { p.pg.Ports[0].Name = "ops" })
	f("readiness on healthz", "readinessProbe path", func(p *pod) { p.pg.ReadinessProbe.HTTPGet.Path = "/healthz" })
	f("liveness by number", "livenessProbe port", func(p *pod) { p.pg.LivenessProbe.HTTPGet.Port.StrVal = "7601" })
	f("no startup probe", "no startupProbe", func(p *pod) { p.pg.StartupProbe = nil })
	f("ops on loopback", "PLAYERGUARD_OPS_LISTEN=127.0.0.1:7601", func(p *pod) { setEnv(&p.pg, "PLAYERGUARD_OPS_LISTEN", "127.0.0.1:7601") })
	f("ops other port", "PLAYERGUARD_OPS_LISTEN=0.0.0.0:9090", func(p *pod) { setEnv(&p.pg, "PLAYERGUARD_OPS_LISTEN", "0.0.0.0:9090") })
	f("literal secret", "PLAYERGUARD_APP_SECRET is not from a secretKeyRef", func(p *pod) { setEnv(&p.pg, "PLAYERGUARD_APP_SECRET", "hunter2") })
	f("no token file", "-admin-token-file", func(p *pod) { p.pg.Args = nil })
	f("token file elsewhere", "is not key admin-token", func(p *pod) { p.pg.Args = []string{"-admin-token-file=/tmp/admin-token"} })
	f("no memory limit", "limits.memory unset", func(p *pod) { delete(p.pg.Resources.Limits, corev1.ResourceMemory) })
	f("GOMEMLIMIT too high", "GOMEMLIMIT=1GiB", func(p *pod) { setEnv(&p.pg, "GOMEMLIMIT", "1GiB") })
	f("short grace", "terminationGracePeriodSeconds", func(p *pod) { g := int64(15); p.spec.TerminationGracePeriodSeconds = &g })
	f("long drain", "terminationGracePeriodSeconds", func(p *pod) { setEnv(&p.pg, "PLAYERGUARD_DRAIN_TIMEOUT", "2m") })
	f("service links", "enableServiceLinks", func(p *pod) { p.spec.EnableServiceLinks = nil })
}

func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

// TestSelectors: each Deployment's selector matches its own pods (the API
// server refuses one that does not), and the PodMonitor selects every pod
// with playerguard, on its pg-ops port and /metrics.
func TestSelectors(t *testing.T) {
	objs := load(t)
	var monitors []*podMonitor
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(v.Spec.Template.Labels)) {
				t.Errorf("%s: spec.selector does not match the pod template's labels (%v)", o, err)
			}
		case *podMonitor:
			monitors = append(monitors, v)
			if len(v.Spec.PodMetricsEndpoints) == 0 {
				t.Errorf("%s: no podMetricsEndpoints", o)
			}
			for _, ep := range v.Spec.PodMetricsEndpoints {
				if ep.Port != "pg-ops" || ep.Path != "/metrics" {
					t.Errorf("%s: endpoint port %q path %q: want pg-ops and /metrics", o, ep.Port, ep.Path)
				}
			}
		}
	}
	if len(monitors) != 1 {
		t.Fatalf("want one PodMonitor, found %d", len(monitors))
	}
	sel, err := metav1.LabelSelectorAsSelector(&monitors[0].Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("PodMonitor selector: %v (empty selects every pod)", err)
	}
	for _, p := range pods(t, objs) {
		if !sel.Matches(labels.Set(p.meta.Labels)) {
			t.Errorf("%s: the PodMonitor's selector %s does not select its pods (labels %v)", p.from, sel, p.meta.Labels)
		}
	}
}

var secretWord = regexp.MustCompile(`(?i)secret|key|token|passw(or)?d|credential`)

// TestNoSecretsOutsideTheExample: the only Secret is the example, its values
// are placeholders that appear in no other file, every key the manifests
// read is in it, and no container anywhere has a secret-looking variable
// with a literal value.
func TestNoSecretsOutsideTheExample(t *testing.T) {
	objs := load(t)
	var example *corev1.Secret
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Secret); ok {
			if o.file != secretExample {
				t.Errorf("%s: a Secret outside %s: secrets are created from files, never kept here", o, secretExample)
				continue
			}
			example = s
		}
	}
	if example == nil || example.Name != secretName {
		t.Fatalf("%s: want the example Secret %q", secretExample, secretName)
	}
	if len(example.Data) > 0 {
		t.Errorf("%s: use stringData placeholders, not data", secretExample)
	}
	for k, v := range example.StringData {
		if !strings.HasPrefix(v, "CHANGE-ME") {
			t.Errorf("%s: %s = %q is not a CHANGE-ME placeholder", secretExample, k, v)
		}
		for _, f := range manifests(t) {
			if f != secretExample {
				if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(v)) {
					t.Errorf("%s contains %s's placeholder value %q", f, secretExample, v)
				}
			}
		}
	}
	// Workloads without playerguard (the fleet tier's Redis) too; those
	// with it below.
	for _, w := range templates(objs) {
		all := append(slices.Clone(w.tmpl.Spec.InitContainers), w.tmpl.Spec.Containers...)
		if slices.ContainsFunc(all, func(c corev1.Container) bool { return c.Name == "playerguard" }) {
			continue
		}
		for _, c := range all {
			for _, e := range c.Env {
				if e.Value != "" && secretWord.MatchString(e.Name) {
					t.Errorf("%s: container %s: %s has a literal value: take it from a Secret", w, c.Name, e.Name)
				}
			}
			for _, a := range c.Args {
				// --tls-key-file /etc/...: a file's name and its path are
				// not secrets.
				if secretWord.MatchString(a) && !strings.HasSuffix(a, "-file") && !strings.HasPrefix(a, "/") {
					t.Errorf("%s: container %s: argument %q looks like a secret on the command line", w, c.Name, a)
				}
			}
		}
	}
	for _, p := range pods(t, objs) {
		var all []corev1.Container
		all = append(all, p.spec.InitContainers...)
		all = append(all, p.spec.Containers...)
		for _, c := range all {
			for _, e := range c.Env {
				if e.Value != "" && secretWord.MatchString(e.Name) {
					t.Errorf("%s: container %s: %s has a literal value: take it from a Secret", p.from, c.Name, e.Name)
				}
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					if _, ok := example.StringData[ref.Key]; ref.Name != secretName || !ok {
						t.Errorf("%s: %s reads Secret %s key %s, which %s does not have", p.from, e.Name, ref.Name, ref.Key, secretExample)
					}
				}
			}
			for _, a := range c.Args {
				if secretWord.MatchString(a) && !strings.Contains(a, "-file=") {
					t.Errorf("%s: container %s: argument %q looks like a secret on the command line", p.from, c.Name, a)
				}
			}
		}
		for _, v := range p.spec.Volumes {
			if v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if _, ok := example.StringData[it.Key]; v.Secret.SecretName != secretName || !ok {
					t.Errorf("%s: volume %s reads Secret %s key %s, which %s does not have", p.from, v.Name, v.Secret.SecretName, it.Key, secretExample)
				}
			}
		}
	}
}

// TestKustomization: the base lists files that exist and decode, every
// manifest is either in the base or an example, and no Secret is in the
// base (applying one would overwrite the real Secret with placeholders).
func TestKustomization(t *testing.T) {
	objs := load(t)
	var k *kustomization
	for _, o := range objs {
		if v, ok := o.obj.(*kustomization); ok {
			if o.file != "kustomization.yaml" {
				t.Errorf("%s: a Kustomization outside the base", o)
			}
			k = v
		}
	}
	if k == nil {
		t.Fatal("kustomization.yaml holds no Kustomization")
	}
	listed := map[string]bool{"kustomization.yaml": true}
	for _, r := range k.Resources {
		st, err := os.Stat(r)
		if err != nil || st.IsDir() {
			t.Errorf("kustomization.yaml lists %s: not a file here (%v)", r, err)
			continue
		}
		listed[filepath.ToSlash(filepath.Clean(r))] = true
	}
	for _, f := range manifests(t) {
		if !listed[f] && !strings.HasPrefix(f, "examples/") {
			t.Errorf("%s is neither in kustomization.yaml's resources nor under examples/", f)
		}
	}
	for _, o := range objs {
		if listed[o.file] {
			if _, ok := o.obj.(*corev1.Secret); ok {
				t.Errorf("%s: a Secret in the base", o)
			}
		}
	}
}

// buildPlayerguard builds the real binary from the repository root once.
var (
	buildDir         string
	buildPlayerguard = sync.OnceValues(func() (string, error) {
		var err error
		if buildDir, err = os.MkdirTemp("", "playerguard-k8s-test"); err != nil {
			return "", err
		}
		bin := filepath.Join(buildDir, "playerguard")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/playerguard")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, out)
		}
		return bin, nil
	})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// testSecret is the value a secret of key gets in TestPlayerguardAcceptsManifests:
// visible ASCII and at least 32 bytes (the fleet key's minimum).
func testSecret(key string) string { return "test-" + key + "-0123456789abcdef0123456789abcdef" }

// TestPlayerguardAcceptsManifests runs the real playerguard -check-config
// with each manifest's arguments and environment: secretKeyRefs become test
// values, mounted secret files become files in a temporary directory. It
// proves the variable names, values and flags are a configuration
// playerguard accepts (an unknown PLAYERGUARD_ variable, a bad duration or a
// missing secret would exit 2), and that the Go runtime accepts GOMEMLIMIT.
func TestPlayerguardAcceptsManifests(t *testing.T) {
	bin, err := buildPlayerguard()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods(t, load(t)) {
		root := t.TempDir()
		env := []string{}
		for _, e := range p.pg.Env {
			switch {
			case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				env = append(env, e.Name+"="+testSecret(e.ValueFrom.SecretKeyRef.Key))
			case e.ValueFrom != nil:
				t.Errorf("%s: %s: only literal values and secretKeyRefs are handled here", p.from, e.Name)
			default:
				env = append(env, e.Name+"="+e.Value)
			}
		}
		for _, m := range p.pg.VolumeMounts {
			for _, v := range p.spec.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					for _, it := range v.Secret.Items {
						path := filepath.Join(root, m.MountPath, it.Path)
						if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(path, []byte(testSecret(it.Key)), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
		args := []string{}
		for _, a := range p.pg.Args {
			if name, path, ok := strings.Cut(a, "-file="); ok && strings.HasPrefix(path, "/") {
				a = name + "-file=" + filepath.Join(root, path)
			}
			args = append(args, a)
		}
		cmd := exec.Command(bin, append(args, "-check-config")...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("%s: playerguard -check-config with the manifest's args and env: %v\n%s", p.from, err, out)
		}
	}
}

// TestKubectlKustomize renders the base with kubectl kustomize, when kubectl
// is installed, and decodes the result strictly too. kubectl is not a Debian
// package, so this skips without it, in CI too.
func TestKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not found: skipping kubectl kustomize (the other tests decode every file)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", ".")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	objs, err := decodeAll("kubectl kustomize output", stdout.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.kind)
		if d, ok := o.obj.(*appsv1.Deployment); ok {
			for _, c := range d.Spec.Template.Spec.InitContainers {
				if c.Name == "playerguard" && !strings.HasPrefix(c.Image, "registry.example.com/playerguard:") {
					t.Errorf("rendered playerguard image %q", c.Image)
				}
			}
		}
	}
	slices.Sort(got)
	if want := []string{"apps/v1 Deployment", "monitoring.coreos.com/v1 PodMonitor"}; !slices.Equal(got, want) {
		t.Errorf("kubectl kustomize renders %v, want %v", got, want)
	}
}

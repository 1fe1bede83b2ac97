package kubernetes

// The fleet tier's example, examples/fleet-redis/: a Redis (Valkey) beside
// the game servers, its ACL file, and the game server whose playerguard
// points at it. Its playerguard is checked like every other one (it differs
// from them only by the fleet settings); here, the rest: the ACL grants the
// playerguard user exactly the commands, keys and channel playerguard uses
// and the default user nothing; the sidecar's address, user and secrets
// match the Service, the ACL and the Secret; Redis is one server without
// persistence, its ACL from a Secret, locked down like playerguard; and
// only the sidecars' pods reach it. TestFleetACLOnRedis then loads the ACL
// into a real redis-server and tries what is allowed and what is not.

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The fleet tier's example files.
const (
	fleetDir        = "examples/fleet-redis/"
	fleetRedis      = fleetDir + "redis.yaml"
	fleetGameserver = fleetDir + "gameserver-deployment.yaml"
	fleetACL        = fleetDir + "users.acl"
	// fleetACLSecret is the Secret Redis reads its ACL file from, made
	// from fleetACL (not kept here: it holds the password).
	fleetACLSecret = "fleet-redis-acl"
)

// fleetCommands are the commands playerguard sends (package fleet): HELLO
// with AUTH to connect, PING to keep the connection, GET, SET NX PX and DEL
// for shared values, locks and kick markers, PUBLISH and SUBSCRIBE for the
// kick channel. CLUSTER SLOTS only against a cluster: refused, the client
// falls back to a single server.
var fleetCommands = []string{"hello", "auth", "ping", "get", "set", "del", "publish", "subscribe"}

// isFleetSetting reports whether an environment variable or an argument is
// one of the fleet tier's settings.
func isFleetSetting(s string) bool {
	for _, p := range []string{"PLAYERGUARD_REDIS_", "PLAYERGUARD_FLEET_", "-redis-", "-fleet-", "--redis-", "--fleet-"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// withoutFleet is c without the fleet tier's settings.
func withoutFleet(c corev1.Container) corev1.Container {
	if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return isFleetSetting(e.Name) }) {
		c.Env = slices.DeleteFunc(slices.Clone(c.Env), func(e corev1.EnvVar) bool { return isFleetSetting(e.Name) })
	}
	if slices.ContainsFunc(c.Args, isFleetSetting) {
		c.Args = slices.DeleteFunc(slices.Clone(c.Args), isFleetSetting)
	}
	return c
}

// aclUser is one line of an ACL file: user Name Rules...
type aclUser struct {
	Name  string
	Rules []string
}

// parseACL reads an ACL file the way Redis does: one user a line, no
// comments (Redis refuses them), blank lines skipped.
func parseACL(src string) ([]aclUser, error) {
	var users []aclUser
	for n, line := range strings.Split(src, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] != "user" || len(f) < 2 {
			return nil, fmt.Errorf("line %d: does not start with \"user <name>\" (ACL files have no comments)", n+1)
		}
		users = append(users, aclUser{Name: f[1], Rules: f[2:]})
	}
	return users, nil
}

// fleetExample is what the checks look at, exported for a deep copy
// through JSON.
type fleetExample struct {
	ACL         []aclUser
	Placeholder string // secret-example.yaml's redis-password
	PG          corev1.Container
	PGLabels    map[string]string
	Redis       appsv1.Deployment
	Services    []corev1.Service
	Policies    []networkingv1.NetworkPolicy
}

func loadFleet(t *testing.T) fleetExample {
	t.Helper()
	var f fleetExample
	src, err := os.ReadFile(fleetACL)
	if err != nil {
		t.Fatal(err)
	}
	if f.ACL, err = parseACL(string(src)); err != nil {
		t.Fatalf("%s: %v", fleetACL, err)
	}
	objs := load(t)
	redis := 0
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Secret:
			if o.file == secretExample && v.Name == secretName {
				f.Placeholder = v.StringData["redis-password"]
			}
		case *appsv1.Deployment:
			if o.file == fleetRedis {
				f.Redis = *v
				redis++
			}
		case *corev1.Service:
			if o.file == fleetRedis {
				f.Services = append(f.Services, *v)
			}
		case *networkingv1.NetworkPolicy:
			if o.file == fleetRedis {
				f.Policies = append(f.Policies, *v)
			}
		}
	}
	if redis != 1 {
		t.Fatalf("%s: %d Deployments, want the one Redis", fleetRedis, redis)
	}
	for _, p := range pods(t, objs) {
		if p.from.file == fleetGameserver {
			f.PG, f.PGLabels = p.pg, p.meta.Labels
		}
	}
	if f.PG.Name == "" {
		t.Fatalf("%s: no playerguard", fleetGameserver)
	}
	return f
}

// redisArgs are a Redis container's --name value options, the server's
// name first in the command or the arguments.
func redisArgs(c corev1.Container) map[string][]string {
	out := map[string][]string{}
	all := append(slices.Clone(c.Command), c.Args...)
	for i := 0; i < len(all); i++ {
		name, ok := strings.CutPrefix(all[i], "--")
		if !ok {
			continue
		}
		var vals []string
		for i+1 < len(all) && !strings.HasPrefix(all[i+1], "--") {
			i++
			vals = append(vals, all[i])
		}
		out[name] = vals
	}
	return out
}

// redisBytes parses a Redis memory size: 400mb, 1gb, 1000000 (Redis' own
// units: k/m/g are powers of 1000, kb/mb/gb of 1024).
func redisBytes(s string) (int64, error) {
	s = strings.ToLower(s)
	units := []struct {
		suffix string
		mul    int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1}}
	mul := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mul = rest, u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a Redis memory size")
	}
	return n * mul, nil
}

// checkFleet returns every problem with the fleet tier's example.
func checkFleet(f fleetExample) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	prefix := "pg:"
	if e, ok := envOf(f.PG, "PLAYERGUARD_REDIS_PREFIX"); ok {
		prefix = e.Value
	}
	user := ""
	if e, ok := envOf(f.PG, "PLAYERGUARD_REDIS_USERNAME"); ok {
		user = e.Value
	}
	if user == "" || user == "default" {
		bad("PLAYERGUARD_REDIS_USERNAME=%q: want the ACL user of its own (playerguard)", user)
	}

	// The ACL: the default user off, playerguard's user exactly what
	// package fleet needs.
	seen := map[string]bool{}
	for _, u := range f.ACL {
		if seen[u.Name] {
			bad("%s: user %s twice", fleetACL, u.Name)
		}
		seen[u.Name] = true
		switch u.Name {
		case "default":
			if !slices.Contains(u.Rules, "off") || slices.Contains(u.Rules, "on") {
				bad("%s: the default user is not off: any client could use it", fleetACL)
			}
			for _, r := range u.Rules {
				if r == "nopass" || strings.HasPrefix(r, ">") || strings.HasPrefix(r, "#") {
					bad("%s: the default user has rule %q: it needs no password, being off", fleetACL, r)
				}
			}
		case user:
			problems = append(problems, checkACLUser(u, f.Placeholder, prefix)...)
		default:
			bad("%s: user %s: the example defines the default user and %s only", fleetACL, u.Name, user)
		}
	}
	if !seen["default"] {
		bad("%s: no line for the default user, which Redis then leaves on with no password", fleetACL)
	}
	if !seen[user] {
		bad("%s: no user %s (PLAYERGUARD_REDIS_USERNAME)", fleetACL, user)
	}

	// The sidecar's secrets: from the Secret, as the example Secret has them.
	for _, s := range []struct{ env, key string }{{"PLAYERGUARD_REDIS_PASSWORD", "redis-password"}, {"PLAYERGUARD_FLEET_KEY", "fleet-key"}} {
		e, ok := envOf(f.PG, s.env)
		switch {
		case !ok:
			bad("%s unset", s.env)
		case e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil:
			bad("%s is not from a secretKeyRef", s.env)
		case e.ValueFrom.SecretKeyRef.Name != secretName || e.ValueFrom.SecretKeyRef.Key != s.key:
			bad("%s reads %s/%s, want %s/%s", s.env, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, secretName, s.key)
		}
	}

	// Redis: one server, replaced (not rolled), without persistence.
	rs := f.Redis.Spec
	if rs.Replicas == nil || *rs.Replicas != 1 {
		bad("%s: replicas is not 1: two servers behind one Service would split the fleet, a kick published on one never reaching the sidecars subscribed to the other", fleetRedis)
	}
	if rs.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		bad("%s: strategy %q: want Recreate, or a rollout runs two servers at once", fleetRedis, rs.Strategy.Type)
	}
	ps := rs.Template.Spec
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		bad("%s: want one container, Redis", fleetRedis)
		return problems
	}
	rc := ps.Containers[0]
	opts := redisArgs(rc)
	one := func(name string) (string, bool) {
		v, ok := opts[name]
		if !ok {
			return "", false
		}
		return strings.Join(v, " "), true
	}
	if v, ok := one("save"); !ok || v != "" {
		bad("%s: --save %q: want --save \"\" (no snapshots: one restored after a kick can bring back an allow without the kick's marker)", fleetRedis, v)
	}
	if v, ok := one("appendonly"); !ok || v != "no" {
		bad("%s: --appendonly %q: want no (no persistence)", fleetRedis, v)
	}
	for _, name := range []string{"requirepass", "user"} {
		if _, ok := opts[name]; ok {
			bad("%s: --%s: credentials on the command line; the ACL comes from the Secret %s", fleetRedis, name, fleetACLSecret)
		}
	}
	if v, _ := one("maxmemory-policy"); v != "volatile-ttl" {
		bad("%s: --maxmemory-policy %q: want volatile-ttl, which evicts shared allows before the kick markers that outlive them", fleetRedis, v)
	}
	lim := rc.Resources.Limits.Memory()
	if v, ok := one("maxmemory"); !ok {
		bad("%s: no --maxmemory: Redis would grow to limits.memory and be killed", fleetRedis)
	} else if n, err := redisBytes(v); err != nil || n == 0 || lim.IsZero() || n >= lim.Value() {
		bad("%s: --maxmemory %s is not below limits.memory %s", fleetRedis, v, lim)
	}
	// The ACL file from the Secret, read-only.
	aclPath, _ := one("aclfile")
	if aclPath == "" {
		bad("%s: no --aclfile", fleetRedis)
	} else {
		mounted := false
		for _, m := range rc.VolumeMounts {
			rel, ok := strings.CutPrefix(aclPath, strings.TrimSuffix(m.MountPath, "/")+"/")
			if !ok || !m.ReadOnly {
				continue
			}
			for _, v := range ps.Volumes {
				if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == fleetACLSecret {
					for _, it := range v.Secret.Items {
						mounted = mounted || it.Key == "users.acl" && it.Path == rel
					}
				}
			}
		}
		if !mounted {
			bad("%s: --aclfile %s is not key users.acl of Secret %s mounted read-only", fleetRedis, aclPath, fleetACLSecret)
		}
	}
	// Locked down like playerguard.
	sc := rc.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	psc := ps.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		bad("%s: securityContext.readOnlyRootFilesystem is not true", fleetRedis)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("%s: securityContext.allowPrivilegeEscalation is not false", fleetRedis)
	}
	if isTrue(sc.Privileged) {
		bad("%s: securityContext.privileged is true", fleetRedis)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		bad("%s: securityContext.capabilities: want drop ALL and no add", fleetRedis)
	}
	if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		bad("%s: securityContext.runAsNonRoot is not true", fleetRedis)
	}
	if sp := cmpOr(sc.SeccompProfile, psc.SeccompProfile); sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("%s: securityContext.seccompProfile.type is not RuntimeDefault", fleetRedis)
	}
	if i := strings.LastIndex(rc.Image, "/"); !strings.Contains(rc.Image[i+1:], ":") || strings.HasSuffix(rc.Image, ":latest") {
		bad("%s: image %q: pin a release tag or digest, not latest", fleetRedis, rc.Image)
	}
	if req := rc.Resources.Requests; req.Cpu().IsZero() || req.Memory().IsZero() {
		bad("%s: resources.requests needs cpu and memory", fleetRedis)
	}
	if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		bad("%s: enableServiceLinks is not false", fleetRedis)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		bad("%s: automountServiceAccountToken is not false: Redis needs no Kubernetes API", fleetRedis)
	}

	// The sidecar's address is the Service, the Service is Redis.
	redisLabels := labels.Set(rs.Template.Labels)
	redisPort := func(tp string) (int32, bool) {
		for _, p := range rc.Ports {
			if p.Name == tp || fmt.Sprint(p.ContainerPort) == tp {
				return p.ContainerPort, true
			}
		}
		return 0, false
	}
	for _, s := range f.Services {
		if strings.HasPrefix(strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_")), "PLAYERGUARD_") {
			bad("%s: Service %s: its service links (%s_SERVICE_HOST...) would be PLAYERGUARD_ variables, which playerguard refuses as unknown", fleetRedis, s.Name, strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_")))
		}
	}
	addr, _ := envOf(f.PG, "PLAYERGUARD_REDIS_ADDR")
	if addr.Value == "" {
		bad("PLAYERGUARD_REDIS_ADDR unset")
	}
	for _, a := range strings.Split(addr.Value, ",") {
		host, port, err := net.SplitHostPort(strings.TrimSpace(a))
		if err != nil {
			bad("PLAYERGUARD_REDIS_ADDR %q: %v", a, err)
			continue
		}
		name, _, _ := strings.Cut(host, ".")
		var svc *corev1.Service
		for i := range f.Services {
			if f.Services[i].Name == name {
				svc = &f.Services[i]
			}
		}
		if svc == nil {
			bad("PLAYERGUARD_REDIS_ADDR %s: no Service %s in %s", a, name, fleetRedis)
			continue
		}
		if sel := labels.SelectorFromSet(svc.Spec.Selector); len(svc.Spec.Selector) == 0 || !sel.Matches(redisLabels) {
			bad("Service %s: selector %v does not select Redis's pods (labels %v)", svc.Name, svc.Spec.Selector, rs.Template.Labels)
		}
		found := false
		for _, sp := range svc.Spec.Ports {
			if fmt.Sprint(sp.Port) != port {
				continue
			}
			found = true
			if _, ok := redisPort(sp.TargetPort.String()); !ok {
				bad("Service %s: port %d's targetPort %s is no port of Redis's container", svc.Name, sp.Port, sp.TargetPort.String())
			}
		}
		if !found {
			bad("PLAYERGUARD_REDIS_ADDR %s: Service %s has no port %s", a, svc.Name, port)
		}
	}

	// Only the sidecars' pods reach Redis.
	admits := false
	for _, np := range f.Policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || sel.Empty() || !sel.Matches(redisLabels) {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			bad("NetworkPolicy %s: policyTypes lacks Ingress", np.Name)
		}
		if len(np.Spec.Ingress) == 0 {
			bad("NetworkPolicy %s: no ingress rule: the sidecars could not reach Redis", np.Name)
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				bad("NetworkPolicy %s: an ingress rule without from admits every pod", np.Name)
			}
			for _, peer := range rule.From {
				if peer.IPBlock != nil || peer.NamespaceSelector != nil || peer.PodSelector == nil {
					bad("NetworkPolicy %s: an ingress peer that is not a pod selector in the namespace", np.Name)
					continue
				}
				ps, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
				if err != nil || ps.Empty() {
					bad("NetworkPolicy %s: an empty pod selector admits every pod of the namespace", np.Name)
				} else if ps.Matches(labels.Set(f.PGLabels)) {
					admits = true
				}
			}
			for _, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				if _, ok := redisPort(p.Port.String()); !ok {
					bad("NetworkPolicy %s: port %s is no port of Redis's container", np.Name, p.Port.String())
				}
			}
		}
	}
	if !admits {
		bad("%s: no NetworkPolicy selects Redis's pods and admits only the game servers' (labels %v)", fleetRedis, f.PGLabels)
	}
	return problems
}

func cmpOr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// checkACLUser checks playerguard's ACL user: on, the example's password
// placeholder, the keys and channel under prefix, and no command but
// fleetCommands.
func checkACLUser(u aclUser, placeholder, prefix string) []string {
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf("%s: user %s: ", fleetACL, u.Name)+fmt.Sprintf(format, a...))
	}
	var passwords, keys, channels, plus []string
	firstCmd := ""
	on := false
	for _, r := range u.Rules {
		switch {
		case r == "on":
			on = true
		case r == "resetkeys" || r == "resetchannels":
		case strings.HasPrefix(r, ">"):
			passwords = append(passwords, r[1:])
		case strings.HasPrefix(r, "~") || strings.HasPrefix(r, "%"):
			keys = append(keys, r)
		case strings.HasPrefix(r, "&"):
			channels = append(channels, r)
		case strings.HasPrefix(r, "+") || strings.HasPrefix(r, "-"):
			if firstCmd == "" {
				firstCmd = r
			}
			if strings.HasPrefix(r, "+") {
				plus = append(plus, strings.ToLower(r[1:]))
			}
		default:
			// off, nopass, allkeys, allchannels, allcommands, reset,
			// resetpass, #hash, <, (selectors)...
			bad("rule %q: not one the example needs", r)
		}
	}
	if !on {
		bad("not on")
	}
	if len(passwords) != 1 || passwords[0] != placeholder {
		bad("passwords %q: want one, %s's redis-password placeholder %q, to be replaced by the same password", passwords, secretExample, placeholder)
	}
	if want := []string{"~" + prefix + "*"}; !slices.Equal(keys, want) {
		bad("key patterns %v: want %v (-redis-prefix %s)", keys, want, prefix)
	}
	if want := []string{"&" + prefix + "kicks"}; !slices.Equal(channels, want) {
		bad("channels %v: want %v", channels, want)
	}
	if firstCmd != "-@all" {
		bad("commands start with %q: want -@all, then only what playerguard uses", firstCmd)
	}
	got := slices.Sorted(slices.Values(plus))
	want := slices.Sorted(slices.Values(fleetCommands))
	if !slices.Equal(got, want) {
		bad("commands +%s: want +%s", strings.Join(got, " +"), strings.Join(want, " +"))
	}
	return problems
}

// TestFleetExample checks examples/fleet-redis.
func TestFleetExample(t *testing.T) {
	for _, problem := range checkFleet(loadFleet(t)) {
		t.Error(problem)
	}
}

// TestFleetChecksCatch breaks the fleet example one way at a time and
// expects checkFleet to say so.
func TestFleetChecksCatch(t *testing.T) {
	base := loadFleet(t)
	raw, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	f := func(name, want string, mutate func(f *fleetExample)) {
		t.Helper()
		var c fleetExample
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		mutate(&c)
		for _, problem := range checkFleet(c) {
			if strings.Contains(problem, want) {
				return
			}
		}
		t.Errorf("%s: want a problem containing %q, got %q", name, want, checkFleet(c))
	}
	pgUser := func(c *fleetExample) *aclUser {
		for i := range c.ACL {
			if c.ACL[i].Name == "playerguard" {
				return &c.ACL[i]
			}
		}
		t.Fatal("no playerguard user")
		return nil
	}
	redis := func(c *fleetExample) *corev1.Container { return &c.Redis.Spec.Template.Spec.Containers[0] }
	setArg := func(c *fleetExample, name string, vals ...string) {
		rc := redis(c)
		for i, a := range rc.Args {
			if a == "--"+name {
				j := i + 1
				for j < len(rc.Args) && !strings.HasPrefix(rc.Args[j], "--") {
					j++
				}
				rc.Args = slices.Concat(rc.Args[:i+1], vals, rc.Args[j:])
				return
			}
		}
		rc.Args = append(rc.Args, append([]string{"--" + name}, vals...)...)
	}
	no, yes := false, true
	two := int32(2)

	f("extra command", "want +auth", func(c *fleetExample) { u := pgUser(c); u.Rules = append(u.Rules, "+keys") })
	f("category", "want +auth", func(c *fleetExample) { u := pgUser(c); u.Rules = append(u.Rules, "+@read") })
	f("missing command", "want +auth", func(c *fleetExample) {
		u := pgUser(c)
		u.Rules = slices.DeleteFunc(u.Rules, func(r string) bool { return r == "+subscribe" })
	})
	f("no -@all", "want -@all", func(c *fleetExample) {
		u := pgUser(c)
		u.Rules = slices.DeleteFunc(u.Rules, func(r string) bool { return r == "-@all" })
	})
	f("all keys", "key patterns", func(c *fleetExample) { u := pgUser(c); u.Rules = append(u.Rules, "~*") })
	f("all channels", "allchannels", func(c *fleetExample) { u := pgUser(c); u.Rules = append(u.Rules, "allchannels") })
	f("other channel", "channels", func(c *fleetExample) { u := pgUser(c); u.Rules = append(u.Rules, "&*") })
	f("nopass", "nopass", func(c *fleetExample) { u := pgUser(c); u.Rules = append(u.Rules, "nopass") })
	f("other password", "placeholder", func(c *fleetExample) {
		u := pgUser(c)
		for i, r := range u.Rules {
			if strings.HasPrefix(r, ">") {
				u.Rules[i] = ">hunter2"
			}
		}
	})
	f("prefix changed", "key patterns", func(c *fleetExample) { setEnv(&c.PG, "PLAYERGUARD_REDIS_PREFIX", "game1:") })
	f("default on", "default user is not off", func(c *fleetExample) { c.ACL[0].Rules = []string{"on", "nopass", "~*", "+@all"} })
	f("no default line", "no line for the default user", func(c *fleetExample) {
		c.ACL = slices.DeleteFunc(c.ACL, func(u aclUser) bool { return u.Name == "default" })
	})
	f("other user", "defines the default user and", func(c *fleetExample) { c.ACL = append(c.ACL, aclUser{"admin", []string{"on", "allcommands"}}) })
	f("user mismatch", "no user pg", func(c *fleetExample) { setEnv(&c.PG, "PLAYERGUARD_REDIS_USERNAME", "pg") })
	f("literal password", "PLAYERGUARD_REDIS_PASSWORD is not from a secretKeyRef", func(c *fleetExample) { setEnv(&c.PG, "PLAYERGUARD_REDIS_PASSWORD", "x") })
	f("fleet key elsewhere", "PLAYERGUARD_FLEET_KEY reads", func(c *fleetExample) {
		for i := range c.PG.Env {
			if c.PG.Env[i].Name == "PLAYERGUARD_FLEET_KEY" {
				c.PG.Env[i].ValueFrom.SecretKeyRef.Key = "other"
			}
		}
	})
	f("two replicas", "replicas is not 1", func(c *fleetExample) { c.Redis.Spec.Replicas = &two })
	f("rolling", "want Recreate", func(c *fleetExample) { c.Redis.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType })
	f("snapshots", "--save", func(c *fleetExample) { setArg(c, "save", "900", "1") })
	f("aof", "--appendonly", func(c *fleetExample) { setArg(c, "appendonly", "yes") })
	f("lru", "volatile-ttl", func(c *fleetExample) { setArg(c, "maxmemory-policy", "allkeys-lru") })
	f("maxmemory too high", "not below limits.memory", func(c *fleetExample) { setArg(c, "maxmemory", "1gb") })
	f("requirepass", "credentials on the command line", func(c *fleetExample) { setArg(c, "requirepass", "x") })
	f("acl elsewhere", "not key users.acl", func(c *fleetExample) { setArg(c, "aclfile", "/tmp/users.acl") })
	f("acl writable", "not key users.acl", func(c *fleetExample) { redis(c).VolumeMounts[0].ReadOnly = false })
	f("writable root", "readOnlyRootFilesystem", func(c *fleetExample) { redis(c).SecurityContext.ReadOnlyRootFilesystem = &no })
	f("privileged", "privileged", func(c *fleetExample) { redis(c).SecurityContext.Privileged = &yes })
	f("root", "runAsNonRoot", func(c *fleetExample) {
		redis(c).SecurityContext.RunAsNonRoot = nil
		c.Redis.Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
	})
	f("latest", "latest", func(c *fleetExample) { redis(c).Image = "docker.io/valkey/valkey:latest" })
	f("untagged", "latest", func(c *fleetExample) { redis(c).Image = "localhost:5000/valkey" })
	f("service links", "enableServiceLinks", func(c *fleetExample) { c.Redis.Spec.Template.Spec.EnableServiceLinks = nil })
	f("service named playerguard-redis", "PLAYERGUARD_ variables", func(c *fleetExample) { c.Services[0].Name = "playerguard-redis" })
	f("address elsewhere", "no Service redis", func(c *fleetExample) { setEnv(&c.PG, "PLAYERGUARD_REDIS_ADDR", "redis:6379") })
	f("wrong port", "has no port 6380", func(c *fleetExample) { setEnv(&c.PG, "PLAYERGUARD_REDIS_ADDR", "fleet-redis:6380") })
	f("service selects nothing", "does not select Redis's pods", func(c *fleetExample) { c.Services[0].Spec.Selector = map[string]string{"app": "other"} })
	f("policy admits all", "empty pod selector", func(c *fleetExample) {
		c.Policies[0].Spec.Ingress[0].From[0].PodSelector = &metav1.LabelSelector{}
	})
	f("policy from namespaces", "not a pod selector", func(c *fleetExample) {
		c.Policies[0].Spec.Ingress[0].From[0].NamespaceSelector = &metav1.LabelSelector{}
	})
	f("no policy", "no NetworkPolicy", func(c *fleetExample) { c.Policies = nil })
	f("sidecar unlabelled", "no NetworkPolicy", func(c *fleetExample) { delete(c.PGLabels, "playerguard-sidecar") })
	f("memory limit", "not below limits.memory", func(c *fleetExample) { delete(redis(c).Resources.Limits, corev1.ResourceMemory) })
}

// TestFleetACLOnRedis loads the example's ACL file, with a password in
// place of the placeholder, into a real redis-server started with the
// manifest's own options, and tries, as playerguard's user, what package
// fleet does (allowed) and what it never does (refused); then the same
// with +cluster|slots added, as for a cluster. Without redis-server it
// skips, except under CI=true (.ci/run installs it).
func TestFleetACLOnRedis(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not found: .ci/run installs it (apt-get install -y redis-server)")
		}
		t.Skip("redis-server not found: apt-get install -y redis-server to run this test")
	}
	f := loadFleet(t)
	user, prefix := "", "pg:"
	if e, ok := envOf(f.PG, "PLAYERGUARD_REDIS_USERNAME"); ok {
		user = e.Value
	}
	if e, ok := envOf(f.PG, "PLAYERGUARD_REDIS_PREFIX"); ok {
		prefix = e.Value
	}
	src, err := os.ReadFile(fleetACL)
	if err != nil {
		t.Fatal(err)
	}
	pwb := make([]byte, 24)
	rand.Read(pwb)
	pw := hex.EncodeToString(pwb)
	acl := strings.Replace(string(src), ">"+f.Placeholder+" ", ">"+pw+" ", 1)
	if acl == string(src) {
		t.Fatalf("%s: no >%s to replace", fleetACL, f.Placeholder)
	}
	// The manifest's options, but the port, the ACL's path and the
	// directory: here, on loopback.
	var opts []string
	for name, vals := range redisArgs(f.Redis.Spec.Template.Spec.Containers[0]) {
		switch name {
		case "port", "aclfile", "dir", "bind":
		default:
			opts = append(opts, "--"+name)
			opts = append(opts, vals...)
			if len(vals) == 0 {
				opts = append(opts, "")
			}
		}
	}

	t.Run("example", func(t *testing.T) {
		addr := startRedis(t, bin, acl, opts)
		pg := dialRedis(t, addr)
		if r := pg.do(t, "HELLO", "2", "AUTH", user, pw); isRedisErr(r) {
			t.Fatalf("HELLO 2 AUTH %s: %v", user, r)
		}
		ok := func(want any, args ...string) {
			t.Helper()
			if r := pg.do(t, args...); fmt.Sprint(r) != fmt.Sprint(want) {
				t.Errorf("%s: %v, want %v", strings.Join(args, " "), r, want)
			}
		}
		v, l, m := prefix+"v:example", prefix+"l:example", prefix+"p:example"
		ok("PONG", "PING")
		ok("OK", "SET", v, "value", "PX", "60000")
		ok("OK", "SET", l, "me", "NX", "PX", "5000")
		ok(nil, "SET", l, "other", "NX", "PX", "5000")
		ok("OK", "SET", m, "1700000000000000", "PX", "60000")
		ok("value", "GET", v)
		ok(int64(3), "DEL", v, l, m)

		// The kick channel, to a subscriber on another connection.
		sub := dialRedis(t, addr)
		if r := sub.do(t, "AUTH", user, pw); r != "OK" {
			t.Fatalf("AUTH %s: %v", user, r)
		}
		if r := sub.do(t, "SUBSCRIBE", prefix+"kicks"); fmt.Sprint(r) != fmt.Sprint([]any{"subscribe", prefix + "kicks", int64(1)}) {
			t.Errorf("SUBSCRIBE %skicks: %v", prefix, r)
		}
		ok(int64(1), "PUBLISH", prefix+"kicks", "sealed")
		if r := sub.read(t); fmt.Sprint(r) != fmt.Sprint([]any{"message", prefix + "kicks", "sealed"}) {
			t.Errorf("the subscriber got %v", r)
		}

		refused := func(args ...string) {
			t.Helper()
			if r := pg.do(t, args...); !isRedisErr(r) || !strings.HasPrefix(string(r.(redisErr)), "NOPERM") {
				t.Errorf("%s: %v, want NOPERM", strings.Join(args, " "), r)
			}
		}
		refused("KEYS", "*")
		refused("SCAN", "0")
		refused("FLUSHALL")
		refused("FLUSHDB")
		refused("GET", "other:key")
		refused("SET", "other:key", "x")
		refused("DEL", "other:key")
		refused("PUBLISH", "other-channel", "x")
		refused("EVAL", "return 1", "0")
		refused("CONFIG", "GET", "*")
		refused("ACL", "LIST")
		refused("CLIENT", "LIST")
		refused("MONITOR")
		refused("SHUTDOWN")
		refused("CLUSTER", "SLOTS")
		other := dialRedis(t, addr)
		other.do(t, "AUTH", user, pw)
		if r := other.do(t, "SUBSCRIBE", "other-channel"); !isRedisErr(r) || !strings.HasPrefix(string(r.(redisErr)), "NOPERM") {
			t.Errorf("SUBSCRIBE other-channel: %v, want NOPERM", r)
		}

		// The default user: off.
		anon := dialRedis(t, addr)
		if r := anon.do(t, "GET", v); !isRedisErr(r) || !strings.HasPrefix(string(r.(redisErr)), "NOAUTH") {
			t.Errorf("GET without AUTH: %v, want NOAUTH", r)
		}
		if r := anon.do(t, "AUTH", "default", ""); !isRedisErr(r) {
			t.Errorf("AUTH default: %v, want refused", r)
		}
		if r := anon.do(t, "AUTH", user, "wrong"); !isRedisErr(r) {
			t.Errorf("AUTH %s with a wrong password: %v, want refused", user, r)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		lines := strings.Split(acl, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "user "+user+" ") {
				lines[i] = l + " +cluster|slots"
			}
		}
		addr := startRedis(t, bin, strings.Join(lines, "\n"), opts)
		pg := dialRedis(t, addr)
		pg.do(t, "AUTH", user, pw)
		// Allowed: a standalone server answers that it is no cluster.
		if r := pg.do(t, "CLUSTER", "SLOTS"); isRedisErr(r) && strings.HasPrefix(string(r.(redisErr)), "NOPERM") {
			t.Errorf("CLUSTER SLOTS with +cluster|slots: %v", r)
		}
		if r := pg.do(t, "CLUSTER", "NODES"); !isRedisErr(r) || !strings.HasPrefix(string(r.(redisErr)), "NOPERM") {
			t.Errorf("CLUSTER NODES: %v, want NOPERM", r)
		}
	})
}

// startRedis runs redis-server on a free loopback port with acl as its ACL
// file and opts, until the test ends.
func startRedis(t *testing.T, bin, acl string, opts []string) string {
	t.Helper()
	dir := t.TempDir()
	aclPath := filepath.Join(dir, "users.acl")
	if err := os.WriteFile(aclPath, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, port, _ := net.SplitHostPort(addr)
		args := append([]string{"--port", port, "--bind", "127.0.0.1", "--aclfile", aclPath, "--dir", dir}, opts...)
		cmd := exec.Command(bin, args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		up := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !up; time.Sleep(20 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				up = true
			}
		}
		if up {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return addr
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 2 || !strings.Contains(out.String(), "in use") {
			t.Fatalf("redis-server %s would not start:\n%s", strings.Join(args, " "), out.String())
		}
	}
}

// redisConn is a minimal RESP2 client: enough to send commands and read
// replies, and no dependency.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

type redisErr string

func (e redisErr) String() string { return "error " + string(e) }

func isRedisErr(r any) bool { _, ok := r.(redisErr); return ok }

func dialRedis(t *testing.T, addr string) *redisConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &redisConn{c: c, r: bufio.NewReader(c)}
}

func (rc *redisConn) do(t *testing.T, args ...string) any {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	rc.c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		t.Fatal(err)
	}
	return rc.read(t)
}

func (rc *redisConn) read(t *testing.T) any {
	t.Helper()
	rc.c.SetDeadline(time.Now().Add(2 * time.Second))
	v, err := rc.value()
	if err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	return v
}

func (rc *redisConn) value() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return redisErr(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = rc.value(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

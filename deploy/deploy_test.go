// Package deploy holds the deployment files; its tests check them: the
// Caddyfile adapts and provisions, the Kubernetes, ECS and IAM files have
// the fields that matter and agree with the Caddyfile, the systemd unit
// verifies, and every series the Grafana dashboard and every metric the
// CloudWatch alarms name is one the gateway really exports.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cwexport"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	_ "github.com/caddy-upload-gateway/upload-gateway/module"
	"github.com/caddy-upload-gateway/upload-gateway/module/ops"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envNames are the {env.X} placeholders of the deployment Caddyfile.
func envNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`\{env\.([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(read(t, "Caddyfile")), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}

// exampleEnv sets every variable the Caddyfile reads to a plausible value.
func exampleEnv(t *testing.T) {
	for _, name := range envNames(t) {
		v := "example-" + strings.ToLower(name)
		switch {
		case strings.HasSuffix(name, "ROLE_ARN"):
			v = "arn:aws:iam::111122223333:role/" + strings.ToLower(name)
		case name == "AWS_REGION":
			v = "eu-west-1"
		case name == "UPLOAD_API_SECRET":
			v = strings.Repeat("s", 48)
		}
		t.Setenv(name, v)
	}
}

// The Caddyfile shipped in every deployment adapts, and the whole config
// provisions and validates as `caddy run` would (no network is used).
func TestCaddyfileAdaptsAndProvisions(t *testing.T) {
	if !bytes.Equal(read(t, "Caddyfile"), read(t, "kubernetes/Caddyfile")) {
		t.Fatal("kubernetes/Caddyfile differs from Caddyfile: copy it again")
	}
	exampleEnv(t)
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(read(t, "Caddyfile"), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapter warning: %s", w.String())
	}
	for _, want := range []string{`"handler":"upload_gateway"`, `"handler":"upload_api"`, `"handler":"upload_health"`,
		`"probe":"ready"`, `":8080"`, `":9180"`} {
		if !bytes.Contains(cfgJSON, []byte(want)) {
			t.Errorf("adapted config lacks %s", want)
		}
	}
	handlers, err := ops.FindHandlers(cfgJSON)
	if err != nil || len(handlers) != 2 {
		t.Fatalf("FindHandlers = %d, %v; want the gateway and the API", len(handlers), err)
	}
	for i := range handlers {
		if _, err := handlers[i].Target(); err != nil {
			t.Errorf("%s: %v", handlers[i].Name, err)
		}
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	// The CloudWatch exporter starts only on Start; Validate provisions.
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validating the adapted config: %v", err)
	}
}

// manifest is what the checks read of any Kubernetes object.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
	Data map[string]string
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type deploymentSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			ServiceAccountName string `yaml:"serviceAccountName"`
			SecurityContext    struct {
				RunAsNonRoot bool `yaml:"runAsNonRoot"`
				RunAsUser    int  `yaml:"runAsUser"`
			} `yaml:"securityContext"`
			TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
			Containers                    []struct {
				Args  []string `yaml:"args"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				} `yaml:"ports"`
				EnvFrom []struct {
					ConfigMapRef struct {
						Name string `yaml:"name"`
					} `yaml:"configMapRef"`
				} `yaml:"envFrom"`
				Env []struct {
					Name string `yaml:"name"`
				} `yaml:"env"`
				StartupProbe    *probe `yaml:"startupProbe"`
				LivenessProbe   *probe `yaml:"livenessProbe"`
				ReadinessProbe  *probe `yaml:"readinessProbe"`
				SecurityContext struct {
					ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
					AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
				} `yaml:"securityContext"`
				VolumeMounts []struct {
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
	Metrics     []struct {
		Type     string `yaml:"type"`
		Resource struct {
			Name string `yaml:"name"`
		} `yaml:"resource"`
		Pods struct {
			Metric struct {
				Name string `yaml:"name"`
			} `yaml:"metric"`
		} `yaml:"pods"`
	} `yaml:"metrics"`
}

type pdbSpec struct {
	MaxUnavailable *int `yaml:"maxUnavailable"`
	MinAvailable   *int `yaml:"minAvailable"`
	Selector       struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
}

func decodeSpec(t *testing.T, m manifest, v any) {
	t.Helper()
	if err := m.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", m.Kind, m.Metadata.Name, err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	var kust struct {
		Resources          []string `yaml:"resources"`
		ConfigMapGenerator []struct {
			Name  string   `yaml:"name"`
			Files []string `yaml:"files"`
		} `yaml:"configMapGenerator"`
	}
	if err := yaml.Unmarshal(read(t, "kubernetes/kustomization.yaml"), &kust); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	byKind := map[string]manifest{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(kust.Resources, filepath.Base(f)) {
			t.Errorf("%s is not in kustomization.yaml", f)
		}
		var m manifest
		if err := yaml.Unmarshal(read(t, f), &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required", f)
		}
		if m.Kind != "Namespace" && m.Metadata.Namespace != "upload-gateway" {
			t.Errorf("%s: namespace %q", f, m.Metadata.Namespace)
		}
		byKind[m.Kind] = m
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
	for _, kind := range []string{"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount", "Service", "ConfigMap"} {
		if _, ok := byKind[kind]; !ok {
			t.Fatalf("no %s manifest", kind)
		}
	}
	wantAPI := map[string]string{"Deployment": "apps/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
		"PodDisruptionBudget": "policy/v1", "ServiceAccount": "v1", "Service": "v1", "ConfigMap": "v1"}
	for kind, api := range wantAPI {
		if byKind[kind].APIVersion != api {
			t.Errorf("%s apiVersion %s, want %s", kind, byKind[kind].APIVersion, api)
		}
	}

	sa := byKind["ServiceAccount"]
	if !strings.HasPrefix(sa.Metadata.Annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::") {
		t.Error("the ServiceAccount has no IRSA role annotation")
	}

	var d deploymentSpec
	decodeSpec(t, byKind["Deployment"], &d)
	if !mapsContain(d.Template.Metadata.Labels, d.Selector.MatchLabels) {
		t.Error("the Deployment's selector does not match its pod labels")
	}
	pod := d.Template.Spec
	if pod.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, sa.Metadata.Name)
	}
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	// Caddy's grace_period (60s) plus the preStop sleep must fit.
	if pod.TerminationGracePeriodSeconds < 75 {
		t.Errorf("terminationGracePeriodSeconds %d is shorter than grace_period + preStop", pod.TerminationGracePeriodSeconds)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("the container's root file system is writable or it may escalate privileges")
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["ops"] != 9180 {
		t.Errorf("container ports %v, want http 8080 and ops 9180 as in the Caddyfile", ports)
	}
	for name, p := range map[string]*probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if p == nil || p.HTTPGet.Path != want || p.HTTPGet.Port != "ops" {
			t.Errorf("%s probe %+v, want GET %s on port ops", name, p, want)
		}
	}
	for _, dir := range []string{"/etc/caddy", "/data", "/config", "/tmp"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m struct {
			MountPath string `yaml:"mountPath"`
		}) bool {
			return m.MountPath == dir
		}) {
			t.Errorf("nothing mounted at %s", dir)
		}
	}
	// Every variable the Caddyfile reads comes from the ConfigMap or env.
	provided := map[string]bool{}
	for k := range byKind["ConfigMap"].Data {
		provided[k] = true
	}
	for _, e := range c.Env {
		provided[e.Name] = true
	}
	if len(c.EnvFrom) == 0 || c.EnvFrom[0].ConfigMapRef.Name != byKind["ConfigMap"].Metadata.Name {
		t.Error("the container does not load the env ConfigMap")
	}
	for _, name := range envNames(t) {
		if !provided[name] {
			t.Errorf("the Deployment does not set %s, which the Caddyfile reads", name)
		}
	}
	if len(kust.ConfigMapGenerator) != 1 || !slices.Contains(kust.ConfigMapGenerator[0].Files, "Caddyfile") {
		t.Error("kustomization.yaml does not generate the Caddyfile ConfigMap")
	}

	var hpa hpaSpec
	decodeSpec(t, byKind["HorizontalPodAutoscaler"], &hpa)
	if hpa.ScaleTargetRef.Kind != "Deployment" || hpa.ScaleTargetRef.Name != byKind["Deployment"].Metadata.Name {
		t.Errorf("the HPA scales %+v", hpa.ScaleTargetRef)
	}
	if hpa.MinReplicas < 2 || hpa.MaxReplicas < hpa.MinReplicas {
		t.Errorf("HPA replicas %d..%d", hpa.MinReplicas, hpa.MaxReplicas)
	}
	var cpu, inflight bool
	exported := exportedFamilies(t)
	for _, m := range hpa.Metrics {
		cpu = cpu || m.Type == "Resource" && m.Resource.Name == "cpu"
		if m.Type == "Pods" {
			inflight = inflight || m.Pods.Metric.Name == "upload_gateway_uploads_in_flight"
			if _, ok := exported[m.Pods.Metric.Name]; !ok {
				t.Errorf("the HPA scales on %s, which the gateway does not export", m.Pods.Metric.Name)
			}
		}
	}
	if !cpu || !inflight {
		t.Errorf("HPA on cpu %v, on uploads in flight %v; want both", cpu, inflight)
	}

	var pdb pdbSpec
	decodeSpec(t, byKind["PodDisruptionBudget"], &pdb)
	if (pdb.MaxUnavailable == nil) == (pdb.MinAvailable == nil) || !mapsContain(d.Template.Metadata.Labels, pdb.Selector.MatchLabels) {
		t.Errorf("the PDB %+v does not select the Deployment's pods with one budget", pdb)
	}
}

func mapsContain(m, sub map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if m[k] != v {
			return false
		}
	}
	return true
}

func TestECSTaskDefinition(t *testing.T) {
	var td struct {
		Family                  string   `json:"family"`
		NetworkMode             string   `json:"networkMode"`
		RequiresCompatibilities []string `json:"requiresCompatibilities"`
		CPU                     string   `json:"cpu"`
		Memory                  string   `json:"memory"`
		TaskRoleArn             string   `json:"taskRoleArn"`
		ExecutionRoleArn        string   `json:"executionRoleArn"`
		ContainerDefinitions    []struct {
			Name                   string   `json:"name"`
			Image                  string   `json:"image"`
			Essential              bool     `json:"essential"`
			User                   string   `json:"user"`
			ReadonlyRootFilesystem bool     `json:"readonlyRootFilesystem"`
			Command                []string `json:"command"`
			PortMappings           []struct {
				ContainerPort int `json:"containerPort"`
			} `json:"portMappings"`
			Environment []struct{ Name, Value string } `json:"environment"`
			Secrets     []struct {
				Name      string `json:"name"`
				ValueFrom string `json:"valueFrom"`
			} `json:"secrets"`
			MountPoints []struct {
				SourceVolume  string `json:"sourceVolume"`
				ContainerPath string `json:"containerPath"`
			} `json:"mountPoints"`
			HealthCheck struct {
				Command []string `json:"command"`
			} `json:"healthCheck"`
			StopTimeout int `json:"stopTimeout"`
		} `json:"containerDefinitions"`
		Volumes []struct {
			Name string `json:"name"`
		} `json:"volumes"`
	}
	dec := json.NewDecoder(bytes.NewReader(read(t, "ecs/task-definition.json")))
	if err := dec.Decode(&td); err != nil {
		t.Fatal(err)
	}
	if td.Family == "" || td.NetworkMode != "awsvpc" || td.CPU == "" || td.Memory == "" ||
		!strings.HasPrefix(td.TaskRoleArn, "arn:aws:iam::") || !strings.HasPrefix(td.ExecutionRoleArn, "arn:aws:iam::") {
		t.Errorf("task definition lacks family, awsvpc, cpu, memory or roles: %+v", td)
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%d containers", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	if !c.Essential || !c.ReadonlyRootFilesystem || c.User == "" || strings.HasPrefix(c.User, "0") || c.User == "root" {
		t.Errorf("container: essential %v, read-only root %v, user %q", c.Essential, c.ReadonlyRootFilesystem, c.User)
	}
	if c.StopTimeout < 75 {
		t.Errorf("stopTimeout %d is shorter than grace_period + shutdown_delay", c.StopTimeout)
	}
	if want := []string{"CMD", "/usr/bin/caddy", "upload-gateway", "probe", "http://127.0.0.1:9180/healthz"}; !slices.Equal(c.HealthCheck.Command, want) {
		t.Errorf("health check %v, want %v", c.HealthCheck.Command, want)
	}
	var ports []int
	for _, p := range c.PortMappings {
		ports = append(ports, p.ContainerPort)
	}
	if !slices.Equal(ports, []int{8080, 9180}) {
		t.Errorf("ports %v", ports)
	}
	provided := map[string]bool{}
	for _, e := range c.Environment {
		provided[e.Name] = true
	}
	for _, s := range c.Secrets {
		provided[s.Name] = true
	}
	for _, name := range envNames(t) {
		if !provided[name] {
			t.Errorf("the task does not set %s, which the Caddyfile reads", name)
		}
	}
	volumes := map[string]bool{}
	for _, v := range td.Volumes {
		volumes[v.Name] = true
	}
	for _, dir := range []string{"/data", "/config", "/tmp"} {
		i := slices.IndexFunc(c.MountPoints, func(m struct {
			SourceVolume  string `json:"sourceVolume"`
			ContainerPath string `json:"containerPath"`
		}) bool {
			return m.ContainerPath == dir
		})
		if i < 0 || !volumes[c.MountPoints[i].SourceVolume] {
			t.Errorf("no volume mounted at %s", dir)
		}
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit := string(read(t, "systemd/upload-gateway.service"))
	for _, want := range []string{"ExecStart=/usr/local/bin/upload-gateway run --config /etc/upload-gateway/Caddyfile --adapter caddyfile",
		"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "TimeoutStopSec=90s", "Type=notify"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// verify wants the binary to exist; any executable stands in for it.
	dir := t.TempDir()
	path := filepath.Join(dir, "upload-gateway.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/upload-gateway", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

type policyDoc struct {
	Version   string `json:"Version"`
	Statement []struct {
		Sid       string          `json:"Sid"`
		Effect    string          `json:"Effect"`
		Principal json.RawMessage `json:"Principal"`
		Action    stringList      `json:"Action"`
		Resource  stringList      `json:"Resource"`
		Condition json.RawMessage `json:"Condition"`
	} `json:"Statement"`
}

// stringList is an IAM field that is a string or a list of strings.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(s))
}

func readPolicy(t *testing.T, name string) policyDoc {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(read(t, filepath.Join("iam", name))))
	dec.DisallowUnknownFields()
	var p policyDoc
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if p.Version != "2012-10-17" || len(p.Statement) == 0 {
		t.Fatalf("%s: Version %q with %d statements", name, p.Version, len(p.Statement))
	}
	for i, s := range p.Statement {
		if s.Effect != "Allow" || len(s.Action) == 0 {
			t.Errorf("%s statement %d: Effect %q, %d actions", name, i, s.Effect, len(s.Action))
		}
		trust := strings.Contains(name, "trust")
		if trust == (len(s.Principal) == 0) || !trust && len(s.Resource) == 0 {
			t.Errorf("%s statement %d: a trust policy names a Principal, others a Resource", name, i)
		}
		for _, a := range s.Action {
			if a == "*" || strings.HasSuffix(a, ":*") {
				t.Errorf("%s: wildcard action %s is not minimal", name, a)
			}
		}
	}
	return p
}

func actionsOf(p policyDoc) map[string][]string {
	m := map[string][]string{}
	for _, s := range p.Statement {
		for _, a := range s.Action {
			m[a] = append(m[a], s.Resource...)
		}
	}
	return m
}

func TestIAMPolicies(t *testing.T) {
	files, _ := filepath.Glob("iam/*policy.json")
	if len(files) < 5 {
		t.Fatalf("%d policy files", len(files))
	}
	for _, f := range files {
		readPolicy(t, filepath.Base(f))
	}

	// The gateway role: everything the handlers and the preflight need,
	// and AssumeRole on exactly the roles the deployments configure.
	gw := actionsOf(readPolicy(t, "gateway-policy.json"))
	for _, a := range []string{"s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject", "s3:GetObject",
		"s3:DeleteObject", "s3:PutObjectTagging", "s3:GetObjectTagging", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
		"kms:GenerateDataKey", "kms:Decrypt", "sts:AssumeRole", "cloudwatch:PutMetricData"} {
		if _, ok := gw[a]; !ok {
			t.Errorf("gateway-policy.json lacks %s", a)
		}
	}
	var cm manifest
	if err := yaml.Unmarshal(read(t, "kubernetes/configmap-env.yaml"), &cm); err != nil {
		t.Fatal(err)
	}
	var roleARNs []string
	for k, v := range cm.Data {
		if strings.HasSuffix(k, "_ROLE_ARN") {
			roleARNs = append(roleARNs, v)
		}
	}
	slices.Sort(roleARNs)
	assumable := slices.Clone(gw["sts:AssumeRole"])
	slices.Sort(assumable)
	if !slices.Equal(roleARNs, assumable) {
		t.Errorf("the gateway may assume %v; the deployment configures %v", assumable, roleARNs)
	}

	// STS roles: the uploader writes only under users/, the viewer only reads.
	up := actionsOf(readPolicy(t, "sts-role-uploader-policy.json"))
	for _, r := range up["s3:PutObject"] {
		if !strings.HasSuffix(r, "/files/users/*") {
			t.Errorf("the uploader may write %s", r)
		}
	}
	view := actionsOf(readPolicy(t, "sts-role-viewer-policy.json"))
	for a := range view {
		if a != "s3:GetObject" && a != "s3:ListBucket" && a != "kms:Decrypt" {
			t.Errorf("the viewer may %s", a)
		}
	}

	var cors struct {
		CORSRules []struct {
			ExposeHeaders []string `json:"ExposeHeaders"`
		} `json:"CORSRules"`
	}
	if err := json.Unmarshal(read(t, "iam/bucket-cors.json"), &cors); err != nil || len(cors.CORSRules) == 0 ||
		!slices.Contains(cors.CORSRules[0].ExposeHeaders, "ETag") {
		t.Errorf("bucket-cors.json does not expose ETag: %v", err)
	}
	var lc struct {
		Rules []struct {
			Status                         string `json:"Status"`
			AbortIncompleteMultipartUpload struct {
				DaysAfterInitiation int `json:"DaysAfterInitiation"`
			} `json:"AbortIncompleteMultipartUpload"`
		} `json:"Rules"`
	}
	if err := json.Unmarshal(read(t, "iam/bucket-lifecycle.json"), &lc); err != nil || len(lc.Rules) == 0 ||
		lc.Rules[0].Status != "Enabled" || lc.Rules[0].AbortIncompleteMultipartUpload.DaysAfterInitiation < 1 {
		t.Errorf("bucket-lifecycle.json does not abort incomplete uploads: %v", err)
	}
}

// exportedFamilies returns the metric families of a gateway's registry,
// with their label names: Caddy's registry (process and Go collectors)
// with the gateway's collectors registered and each vector touched once.
func exportedFamilies(t *testing.T) map[string][]string {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	reg := ctx.GetMetricsRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveRequest("r", "upload", 200, time.Millisecond)
	m.UploadStarted(10)("uploader", metrics.ResultOK, 10, 2)
	m.AuthFailure("invalid")
	m.AccessDenied("upload")
	m.Presign("put")
	m.STSRequest("ok", time.Millisecond)
	m.S3Request("PutObject", "ok", time.Millisecond)
	m.Aborted("client_gone")
	m.RolledBack(1)
	m.JanitorSwept("files/", 1, 1, 1)
	m.CloudWatchDropped(1)
	m.CloudWatchPutError(nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		var labels []string
		if len(mf.GetMetric()) > 0 {
			for _, l := range mf.GetMetric()[0].GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		name := mf.GetName()
		out[name] = labels
		if mf.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[name+suffix] = append(slices.Clone(labels), "le")
			}
		}
	}
	return out
}

// Every series the dashboard queries is exported, and every label it
// groups or filters by is one of that series' labels.
func TestDashboardQueriesExportedSeries(t *testing.T) {
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(read(t, "grafana/upload-gateway-dashboard.json"), &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("the dashboard has no uid or title")
	}
	exported := exportedFamilies(t)
	series := regexp.MustCompile(`\b((?:upload_gateway|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)
	matcher := regexp.MustCompile(`([a-z_]+)\s*(?:=~|!=|!~|=)`)
	grouping := regexp.MustCompile(`\bby \(([^)]*)\)`)
	used := map[string]bool{}
	var queries int
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			found := series.FindAllStringSubmatch(q.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: no gateway series in %s", p.Title, q.Expr)
			}
			var labels []string
			for _, f := range found {
				name := f[1]
				used[name] = true
				l, ok := exported[name]
				if !ok {
					t.Errorf("panel %q: %s is not exported", p.Title, name)
					continue
				}
				labels = append(labels, l...)
				for _, mm := range matcher.FindAllStringSubmatch(f[2], -1) {
					if mm[1] != "instance" && !slices.Contains(l, mm[1]) {
						t.Errorf("panel %q: %s has no label %s", p.Title, name, mm[1])
					}
				}
			}
			for _, g := range grouping.FindAllStringSubmatch(q.Expr, -1) {
				for _, lbl := range strings.Split(g[1], ",") {
					lbl = strings.TrimSpace(lbl)
					if lbl != "instance" && !slices.Contains(labels, lbl) {
						t.Errorf("panel %q groups by %s, which its series do not have", p.Title, lbl)
					}
				}
			}
		}
	}
	t.Logf("%d queries over %d distinct series", queries, len(used))
	// The list: each area has at least one panel.
	for _, want := range []string{"upload_gateway_uploads_total", "upload_gateway_upload_bytes_total",
		"upload_gateway_upload_duration_seconds_bucket", "upload_gateway_upload_speed_bytes_per_second_bucket",
		"upload_gateway_uploads_in_flight", "upload_gateway_auth_failures_total", "upload_gateway_access_denied_total",
		"upload_gateway_s3_requests_total", "upload_gateway_sts_requests_total", "upload_gateway_orphan_uploads",
		"upload_gateway_orphan_bytes"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// The alarms name metrics and dimension sets the gateway sends, so that
// each Metrics Insights query matches real data.
func TestCloudWatchAlarms(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal(read(t, "cloudwatch/alarms.yaml"), &root); err != nil {
		t.Fatal(err)
	}
	// The dimension sets module/metricsapp sends each metric with.
	sent := map[string][][]string{
		cwexport.MetricAPIRequestDuration: {{cwexport.DimResult, cwexport.DimRoute}, {"Endpoint", cwexport.DimResult, cwexport.DimRoute}},
		cwexport.MetricAPIRequestCount:    {{cwexport.DimResult, cwexport.DimRoute}, {"Endpoint", cwexport.DimResult, cwexport.DimRoute}},
		cwexport.MetricUploadCount:        {{cwexport.DimResult, cwexport.DimRole, cwexport.DimRoute}},
		cwexport.MetricAuthFailureCount:   {{cwexport.DimReason}},
		cwexport.MetricAccessDeniedCount:  {{cwexport.DimRole, cwexport.DimRoute}, {cwexport.DimRoute}},
	}
	query := regexp.MustCompile(`^SELECT (AVG|SUM|MAX|MIN|COUNT)\((\w+)\) FROM SCHEMA\("\$\{Namespace\}", ([\w, ]+)\)( WHERE (\w+) = '(\w+)')?$`)
	var alarms, checked int
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "Type" && v.Value == "AWS::CloudWatch::Alarm" {
					alarms++
				}
				if k.Value != "Expression" {
					continue
				}
				checked++
				m := query.FindStringSubmatch(v.Value)
				if m == nil {
					t.Errorf("expression %q is not a Metrics Insights query this test understands", v.Value)
					continue
				}
				dims := strings.Split(strings.ReplaceAll(m[3], " ", ""), ",")
				if !slices.ContainsFunc(sent[m[2]], func(s []string) bool { return slices.Equal(s, dims) }) {
					t.Errorf("%s is not sent with dimensions %v (sent: %v)", m[2], dims, sent[m[2]])
				}
				if m[5] != "" && !slices.Contains(dims, m[5]) {
					t.Errorf("WHERE on %s, not a dimension of the schema", m[5])
				}
				if m[5] == cwexport.DimResult && m[6] != metrics.ResultFailed {
					t.Errorf("WHERE Result = %q; uploads fail as %q", m[6], metrics.ResultFailed)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	if alarms != 3 || checked != 3 {
		t.Errorf("%d alarms with %d queries, want the 3 of the seed", alarms, checked)
	}
}

// Package schemacheck validates the manifests in deploy/kubernetes against
// the Kubernetes API types: each file is decoded strictly into the Go type
// of its kind (k8s.io/api), so a misspelled field, a field at the wrong
// level or a value of the wrong type fails (field names match without
// regard to case, as encoding/json does, unlike the API server). It is a
// module of its own, so
// the gateway's module does not depend on k8s.io/api; run it with
// `cd deploy/kubernetes/schemacheck && go test ./...`.
package schemacheck

import (
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// typeOf returns a fresh value of the API type for apiVersion and kind.
func typeOf(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Namespace":
		return &corev1.Namespace{}
	}
	return nil
}

func TestManifestsMatchTheAPISchema(t *testing.T) {
	files, err := filepath.Glob("../*.yaml")
	if err != nil || len(files) < 7 {
		t.Fatalf("found %d manifests: %v", len(files), err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(b, &meta); err != nil {
				t.Fatal(err)
			}
			obj := typeOf(meta.APIVersion, meta.Kind)
			if obj == nil {
				t.Fatalf("no API type known for %s %s", meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(b, obj); err != nil {
				t.Errorf("%s %s does not match the API schema: %v", meta.APIVersion, meta.Kind, err)
			}
		})
	}
}

// A misspelled field is caught, so the check above can fail.
func TestStrictDecodingCatchesUnknownFields(t *testing.T) {
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n")
	if err := yaml.UnmarshalStrict(bad, &appsv1.Deployment{}); err == nil {
		t.Fatal("spec.replica (for replicas) was accepted")
	}
}

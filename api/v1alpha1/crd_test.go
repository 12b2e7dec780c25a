package v1alpha1_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/config"
)

// crdSchema reads the generated CRD's schema of v1alpha1.
func crdSchema(t *testing.T) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "tracestream.io_redistraceexporters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	return *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

// at walks a dotted path of properties from the schema's root.
func at(t *testing.T, s apiextensionsv1.JSONSchemaProps, path string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	for _, p := range strings.Split(path, ".") {
		next, ok := s.Properties[p]
		if !ok {
			t.Fatalf("the CRD has no %s", path)
		}
		s = next
	}
	return s
}

// TestCRDDefaultsAreTheGoDefaults: every default the API server applies equals the Go constant
// the operator applies to an object that never went through the API server, so a default is
// written in one place (defaults.go) and a marker that drifts from it fails here.
func TestCRDDefaultsAreTheGoDefaults(t *testing.T) {
	root := crdSchema(t)
	for path, want := range map[string]string{
		"spec.replicas":                                                  fmt.Sprint(v1.DefaultReplicas),
		"spec.stream.keyTemplate":                                        fmt.Sprintf("%q", v1.DefaultKeyTemplate),
		"spec.receivers.grpcPort":                                        fmt.Sprint(v1.DefaultGRPCPort),
		"spec.receivers.httpPort":                                        fmt.Sprint(v1.DefaultHTTPPort),
		"spec.lag.refreshInterval":                                       fmt.Sprintf("%q", v1.DefaultLagRefresh.String()),
		"spec.lag.maxStreams":                                            fmt.Sprint(v1.DefaultLagMaxStreams),
		"spec.autoscaling.minReplicas":                                   fmt.Sprint(v1.DefaultMinReplicas),
		"spec.autoscaling.targetCPUUtilizationPercentage":                fmt.Sprint(v1.DefaultTargetCPUUtilization),
		"spec.delivery.persistentQueue.claimRetentionPolicy.whenScaled":  fmt.Sprintf("%q", v1.DefaultClaimRetention),
		"spec.delivery.persistentQueue.claimRetentionPolicy.whenDeleted": fmt.Sprintf("%q", v1.DefaultClaimRetention),
	} {
		s := at(t, root, path)
		if s.Default == nil {
			t.Errorf("%s has no default in the CRD, want %s", path, want)
			continue
		}
		if got := string(s.Default.Raw); got != want {
			t.Errorf("%s defaults to %s in the CRD, %s in defaults.go", path, got, want)
		}
	}
	// A default the CRD cannot apply (the field is refused outside one mode) is applied by the
	// operator alone: the field's description must name it, and no marker may set it.
	for path, want := range map[string]string{
		"spec.delivery.persistentQueue.accessMode": string(v1.DefaultQueueAccessMode),
	} {
		s := at(t, root, path)
		if s.Default != nil {
			t.Errorf("%s has a default in the CRD (%s): it would appear where the CRD refuses the field", path, s.Default.Raw)
		}
		if !strings.Contains(s.Description, "default "+want) {
			t.Errorf("%s: the description does not say \"default %s\" (defaults.go): %q", path, want, s.Description)
		}
	}
	if got := config.Default().Stream.KeyTemplate; got != v1.DefaultKeyTemplate {
		t.Errorf("the exporter's default key template %q differs from the API's %q", got, v1.DefaultKeyTemplate)
	}
}

// TestAPIReferenceListsEveryCELRule: docs/reference/api.md names every CEL rule of the CRD with
// its message (crd-ref-docs leaves them out unless its template prints them).
func TestAPIReferenceListsEveryCELRule(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "reference", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []apiextensionsv1.ValidationRule
	var walk func(s apiextensionsv1.JSONSchemaProps)
	walk = func(s apiextensionsv1.JSONSchemaProps) {
		rules = append(rules, s.XValidations...)
		for _, p := range s.Properties {
			walk(p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(*s.Items.Schema)
		}
	}
	walk(crdSchema(t))
	if len(rules) < 8 {
		t.Fatalf("found %d CEL rules in the CRD; the walk misses some", len(rules))
	}
	for _, r := range rules {
		if !strings.Contains(string(doc), r.Message) {
			t.Errorf("docs/reference/api.md does not list the rule %q (%s): run make docs", r.Rule, r.Message)
		}
	}
}

package controller

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// specError is a problem only the user can fix in the spec or its Secrets (Stalled, with reason).
type specError struct {
	reason, msg string
}

func (e *specError) Error() string { return e.msg }

// secrets are the referenced Secrets of one pass, read once: render's inputs and the lag
// reader's credentials come from the same copy.
type secrets map[render.SecretUse]*corev1.Secret

// reconcileSecrets reads every referenced Secret (uncached), checks the keys the pods will mount
// and hashes their data, so that a change rolls the pods.
func (r *Reconciler) reconcileSecrets(ctx context.Context, obj *v1.RedisTraceExporter) (render.Inputs, secrets, error) {
	in := render.Inputs{Image: r.Image}
	read := secrets{}
	var hashParts []string
	for _, ref := range render.SecretRefs(obj) {
		s, err := r.readSecret(ctx, obj, ref)
		if err != nil {
			return in, nil, err
		}
		read[ref.Use] = s
		hashParts = append(hashParts, secretHashParts(s)...)
		for _, f := range ref.Files {
			if p := in.Optional(ref.Use); f.Optional && p != nil {
				*p = len(s.Data[f.Key]) > 0
			}
		}
	}
	in.SecretsHash = render.Hash(hashParts...)
	return in, read, nil
}

// readSecret reads one referenced Secret and checks that it holds the keys the pods need.
func (r *Reconciler) readSecret(ctx context.Context, obj *v1.RedisTraceExporter, ref render.SecretRef) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: ref.Name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &specError{v1.ReasonSecretNotFound, fmt.Sprintf("Secret %q referenced by %s does not exist", ref.Name, ref.Field)}
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", obj.Namespace, ref.Name, err)
	}
	for _, f := range ref.Files {
		if !f.Optional && len(s.Data[f.Key]) == 0 {
			return nil, &specError{v1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q referenced by %s has no key %q", ref.Name, ref.Field, f.Key)}
		}
	}
	return s, nil
}

// secretHashParts are a Secret's name and data in a stable order, for the pod-template hash.
func secretHashParts(s *corev1.Secret) []string {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, 3*len(keys))
	for _, k := range keys {
		parts = append(parts, s.Name, k, string(s.Data[k]))
	}
	return parts
}

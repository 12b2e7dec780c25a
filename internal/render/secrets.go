package render

import v1 "github.com/tracestream/tracestream/api/v1alpha1"

// SecretUse says what a referenced Secret is for. It also names the Secret's volume in the pod.
type SecretUse string

// The Secrets a RedisTraceExporter can reference.
const (
	SecretRedisAuth     SecretUse = "redis-auth"
	SecretRedisCA       SecretUse = "redis-ca"
	SecretRedisClient   SecretUse = "redis-client"
	SecretReceiverTLS   SecretUse = "receiver-tls"
	SecretReceiverToken SecretUse = "receiver-token"
)

// SecretRef is one Secret the resource references: the one list of them, read by the
// controller (checking keys, hashing data, the lag reader's credentials, the watch index) and by
// the Deployment (its volumes), so that a new reference cannot be forgotten by one of them.
type SecretRef struct {
	Use SecretUse
	// Field is where the spec names the Secret, for messages.
	Field string
	// Name of the Secret, in the resource's namespace.
	Name string
	// Files are the keys the pod mounts, in order.
	Files []SecretFile
}

// SecretFile is a key of a referenced Secret and the file the pod sees it as.
type SecretFile struct {
	Key  string
	Path string
	// Optional keys may be absent; they are mounted only when present (see Inputs.Optional).
	Optional bool
}

// Dir is where the pod mounts the Secret.
func (r SecretRef) Dir() string { return secretDir(r.Use) }

func secretDir(use SecretUse) string { return "/etc/tracestream/" + string(use) }

// secretFile is the path in the pod of a file of a Secret mounted for use.
func secretFile(use SecretUse, path string) string { return secretDir(use) + "/" + path }

// SecretRefs lists the Secrets the spec references. TLS towards Redis counts only when enabled
// (the CRD refuses its Secrets otherwise).
func SecretRefs(rte *v1.RedisTraceExporter) []SecretRef {
	var refs []SecretRef
	tlsFiles := []SecretFile{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}
	s := rte.Spec
	if a := s.Redis.Auth; a != nil {
		user, pass := AuthKeys(a)
		refs = append(refs, SecretRef{SecretRedisAuth, "spec.redis.auth.secretRef", a.SecretRef.Name,
			[]SecretFile{{Key: user, Path: "username", Optional: true}, {Key: pass, Path: "password"}}})
	}
	if t := s.Redis.TLS; t != nil && t.Enabled {
		if r := t.CASecretRef; r != nil {
			refs = append(refs, SecretRef{SecretRedisCA, "spec.redis.tls.caSecretRef", r.Name,
				[]SecretFile{{Key: r.Key, Path: "ca.crt"}}})
		}
		if r := t.ClientCertSecretRef; r != nil {
			refs = append(refs, SecretRef{SecretRedisClient, "spec.redis.tls.clientCertSecretRef", r.Name, tlsFiles})
		}
	}
	if r := s.Receivers.TLSSecretRef; r != nil {
		// With ca.crt, clients must present a certificate signed by it (mutual TLS).
		files := append(append([]SecretFile(nil), tlsFiles...), SecretFile{Key: "ca.crt", Path: "ca.crt", Optional: true})
		refs = append(refs, SecretRef{SecretReceiverTLS, "spec.receivers.tlsSecretRef", r.Name, files})
	}
	if r := s.Receivers.BearerTokenSecretRef; r != nil {
		refs = append(refs, SecretRef{SecretReceiverToken, "spec.receivers.bearerTokenSecretRef", r.Name,
			[]SecretFile{{Key: r.Key, Path: "token"}}})
	}
	return refs
}

// SecretNames are the names of the referenced Secrets (for the controller's watch index).
func SecretNames(rte *v1.RedisTraceExporter) []string {
	var names []string
	for _, r := range SecretRefs(rte) {
		names = append(names, r.Name)
	}
	return names
}

// Optional is where Inputs records whether the Secret for use holds its optional key; nil when
// that Secret has none. The controller sets it, the builders read it: one mapping for both.
func (in *Inputs) Optional(use SecretUse) *bool {
	switch use {
	case SecretRedisAuth:
		return &in.HasUsername
	case SecretReceiverTLS:
		return &in.ReceiverClientCA
	}
	return nil
}

// mounts says whether the pod mounts file f of the Secret for use.
func (in Inputs) mounts(use SecretUse, f SecretFile) bool {
	if !f.Optional {
		return true
	}
	p := in.Optional(use)
	return p != nil && *p
}

func usernameKey(a *v1.RedisAuth) string {
	if a.SecretRef.UsernameKey != "" {
		return a.SecretRef.UsernameKey
	}
	return "username"
}

func passwordKey(a *v1.RedisAuth) string {
	if a.SecretRef.PasswordKey != "" {
		return a.SecretRef.PasswordKey
	}
	return "password"
}

// AuthKeys returns the keys the auth Secret must (password) and may (username) hold.
func AuthKeys(a *v1.RedisAuth) (username, password string) { return usernameKey(a), passwordKey(a) }

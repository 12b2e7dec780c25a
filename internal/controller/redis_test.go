package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// TestTheLagReaderTrimsCredentialsAsTheExporterDoes: a Secret written with `echo` ends its
// values with a newline, which both planes drop; a password that really ends with a space
// keeps it in both. The operator used strings.TrimSpace, so it logged in with another password
// than the exporter pods for such a Secret.
func TestTheLagReaderTrimsCredentialsAsTheExporterDoes(t *testing.T) {
	obj := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns"},
		Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"127.0.0.1:6379"},
			Auth: &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "redis-auth"}}}},
	}
	user, pass := render.AuthKeys(obj.Spec.Redis.Auth)
	s := secrets{render.SecretRedisAuth: &corev1.Secret{Data: map[string][]byte{
		user: []byte(" tracestream\n"),
		pass: []byte("pass word \r\n"),
	}}}
	target, err := redisTarget(obj, s)
	if err != nil {
		t.Fatal(err)
	}
	if target.Username != " tracestream" || target.Password != "pass word " {
		t.Errorf("credentials %q / %q, want %q / %q (only the trailing CR/LF go)", target.Username, target.Password, " tracestream", "pass word ")
	}
}

// TestACAWithoutACertificateIsATLSCause: a CA Secret whose key holds no PEM certificate cannot
// verify any server; RedisReachable must point at spec.redis.tls (TLSHandshakeFailed), as a
// handshake against a wrong CA does, not say that Redis answered with an error.
func TestACAWithoutACertificateIsATLSCause(t *testing.T) {
	obj := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns"},
		Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"127.0.0.1:6379"},
			TLS: &v1.RedisTLS{Enabled: true, CASecretRef: &v1.SecretKeyRef{Name: "ca", Key: "ca.crt"}}}},
	}
	s := secrets{render.SecretRedisCA: &corev1.Secret{Data: map[string][]byte{"ca.crt": []byte("not a certificate")}}}
	sample := (&Reconciler{}).collectLag(t.Context(), obj, s)
	if sample.err == nil {
		t.Fatal("the lag reader accepted a CA without a certificate")
	}
	o := observed{redisChecked: true, redisErr: sample.err, redisCause: sample.cause}
	c := conditions{st: &v1.RedisTraceExporterStatus{}}
	setRedisReachable(c, obj, o)
	if got := c.get(v1.ConditionRedisReachable); got == nil || got.Reason != v1.ReasonRedisTLSFailed {
		t.Errorf("RedisReachable = %+v, want reason %s", got, v1.ReasonRedisTLSFailed)
	}
}

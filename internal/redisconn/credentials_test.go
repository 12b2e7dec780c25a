package redisconn_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/redisconn"
)

// TestTrimCredential pins the one rule both planes apply to a credential: the trailing line
// ending an editor or kubectl --from-file leaves goes, spaces and tabs stay wherever they are
// (a Redis password may hold them; the operator used to trim them and so sent a different
// password than the exporter).
func TestTrimCredential(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"a trailing newline goes":              {in: "secret\n", want: "secret"},
		"a trailing CRLF goes":                 {in: "secret\r\n", want: "secret"},
		"several trailing line endings go":     {in: "secret\n\r\n\n", want: "secret"},
		"spaces around the password stay":      {in: " pass word \n", want: " pass word "},
		"a trailing tab stays":                 {in: "secret\t", want: "secret\t"},
		"a leading newline stays":              {in: "\nsecret", want: "\nsecret"},
		"a password without a newline is kept": {in: "secret", want: "secret"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := redisconn.TrimCredential(tc.in); got != tc.want {
				t.Errorf("TrimCredential(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func writeSecret(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFileCredentialsRereadAtEachDial checks that the provider sees a rotated file, trims it
// by TrimCredential, and marks a file that went missing as ErrCredentials.
func TestFileCredentialsRereadAtEachDial(t *testing.T) {
	dir := t.TempDir()
	user, pass := filepath.Join(dir, "username"), filepath.Join(dir, "password")
	writeSecret(t, user, "tracer\n")
	writeSecret(t, pass, " old pass \r\n")
	provider, err := redisconn.FileCredentials(user, pass, "redis.")
	if err != nil {
		t.Fatalf("FileCredentials: %v", err)
	}
	if u, p, err := provider(context.Background()); err != nil || u != "tracer" || p != " old pass " {
		t.Fatalf("provider() = %q, %q, %v; want tracer, \" old pass \"", u, p, err)
	}
	writeSecret(t, pass, "new\n")
	if _, p, err := provider(context.Background()); err != nil || p != "new" {
		t.Fatalf("after rotation provider() = %q, %v; want new", p, err)
	}
	if err := os.Remove(pass); err != nil {
		t.Fatal(err)
	}
	_, _, err = provider(context.Background())
	if !errors.Is(err, redisconn.ErrCredentials) || redisconn.Classify(err) != redisconn.ClassAuth ||
		!strings.Contains(err.Error(), "redis.passwordFile") {
		t.Fatalf("with the file gone provider() = %v; want ErrCredentials (auth) naming redis.passwordFile", err)
	}
}

func TestFileCredentialsRefuses(t *testing.T) {
	dir := t.TempDir()
	empty, pass := filepath.Join(dir, "empty"), filepath.Join(dir, "password")
	writeSecret(t, empty, "\r\n")
	writeSecret(t, pass, "secret\n")
	cases := map[string]struct {
		user, pass, wantErr string
	}{
		"a username without a password": {user: pass, wantErr: "redis.usernameFile: requires redis.passwordFile"},
		"a missing password file":       {pass: filepath.Join(dir, "missing"), wantErr: "redis.passwordFile: open "},
		"a password file of line ends":  {pass: empty, wantErr: "redis.passwordFile: " + empty + " is empty"},
		"a missing username file":       {user: filepath.Join(dir, "missing"), pass: pass, wantErr: "redis.usernameFile: open "},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := redisconn.FileCredentials(tc.user, tc.pass, "redis.")
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "secret") {
				t.Fatalf("FileCredentials = %v; want an error starting with %q, without the password", err, tc.wantErr)
			}
		})
	}
	if p, err := redisconn.FileCredentials("", "", "redis."); p != nil || err != nil {
		t.Errorf("FileCredentials without files = %v, %v; want nil, nil", p, err)
	}
}

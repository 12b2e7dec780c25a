package redistest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ACL holds the credentials of the ACL user and keeps them in two files, because the
// exporter reads credentials from a mounted Secret rather than from its configuration.
type ACL struct {
	username string
	dir      string

	mu       sync.Mutex
	password string
}

func newACL(t testing.TB, dir, username string) *ACL {
	t.Helper()
	a := &ACL{username: username, dir: dir}
	a.setPassword(t, RandomPassword(t))
	if err := writeFileAtomically(a.UsernameFile(), []byte(username)); err != nil {
		t.Fatalf("writing %s: %v", a.UsernameFile(), err)
	}
	return a
}

// RandomPassword returns an unguessable password, for tests that rotate one.
func RandomPassword(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("generating a password: %v", err)
	}
	return hex.EncodeToString(b)
}

// Username is the ACL user's name.
func (a *ACL) Username() string { return a.username }

// Password is the ACL user's current password; it changes with SetPassword.
func (a *ACL) Password() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.password
}

// UsernameFile holds the username without a trailing newline, like a Secret key
// mounted as a file.
func (a *ACL) UsernameFile() string { return filepath.Join(a.dir, "username") }

// PasswordFile holds the current password without a trailing newline. SetPassword
// replaces it by rename, so a reader sees the old or the new password, never half.
func (a *ACL) PasswordFile() string { return filepath.Join(a.dir, "password") }

func (a *ACL) setPassword(t testing.TB, password string) {
	t.Helper()
	if err := writeFileAtomically(a.PasswordFile(), []byte(password)); err != nil {
		t.Fatalf("writing %s: %v", a.PasswordFile(), err)
	}
	a.mu.Lock()
	a.password = password
	a.mu.Unlock()
}

// fileContents is the aclfile: the default user can neither log in nor run anything,
// so a client that forgot its credentials gets NOAUTH instead of writing.
func (a *ACL) fileContents() string {
	return "user default off resetpass resetkeys resetchannels -@all\n" +
		// &* because sentinels talk to the master over pub/sub, which Redis 7 denies
		// by default.
		"user " + a.username + " on >" + a.Password() + " ~* &* +@all\n"
}

func writeFileAtomically(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rotatePassword changes the password on every data node, persists it there (ACL SAVE,
// and masterauth through CONFIG REWRITE so that replication survives a restart), then
// in the files, then on the sentinels. Existing connections keep working, as in Redis.
func rotatePassword(t testing.TB, acl *ACL, nodes, sentinels []*Server, masterName, password string) {
	t.Helper()
	if acl == nil {
		t.Fatalf("SetPassword needs a topology started WithACL")
	}
	for _, n := range nodes {
		if n.PID() == 0 {
			t.Fatalf("SetPassword: %s is not running, so it would come back with the old password", n)
		}
		// One connection for all four commands: after SETUSER a new connection would
		// need the new password, which acl does not hold yet.
		c := redis.NewClient(n.adminOptions())
		conn := c.Conn()
		for _, cmd := range [][]any{
			{"ACL", "SETUSER", acl.Username(), "resetpass", ">" + password},
			{"ACL", "SAVE"},
			{"CONFIG", "SET", "masterauth", password},
			{"CONFIG", "REWRITE"},
		} {
			if err := conn.Do(t.Context(), cmd...).Err(); err != nil {
				_ = conn.Close()
				_ = c.Close()
				t.Fatalf("SetPassword on %s: %v: %v", n, cmd[:2], err)
			}
		}
		_ = conn.Close()
		_ = c.Close()
	}
	acl.setPassword(t, password)
	for _, s := range sentinels {
		s.mustDo(t, "SENTINEL", "SET", masterName, "auth-pass", password)
	}
}

package receiver

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := newTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		header string
		allow  bool
	}{
		"the canonical scheme is allowed":             {"Bearer s3cret", true},
		"a lower-case scheme is allowed (RFC 7235)":   {"bearer s3cret", true},
		"an upper-case scheme is allowed":             {"BEARER s3cret", true},
		"surrounding spaces are ignored":              {"  Bearer   s3cret ", true},
		"a wrong token is refused":                    {"Bearer s3cre", false},
		"another scheme is refused":                   {"Basic s3cret", false},
		"the token alone is refused":                  {"s3cret", false},
		"an empty header is refused":                  {"", false},
		"a scheme that only starts with bearer fails": {"Bearerx s3cret", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tok.allow(tc.header); got != tc.allow {
				t.Fatalf("allow(%q) = %v, want %v", tc.header, got, tc.allow)
			}
		})
	}
}

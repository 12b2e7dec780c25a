package redisconn

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// TrimCredential is the one rule for a username or password read from a Secret or a file:
// trailing CR and LF characters are dropped, nothing else. kubectl create secret
// --from-file keeps the newline an editor adds, and a file edited on Windows ends in CRLF;
// spaces and tabs are kept, wherever they are, because a Redis password may contain them
// (ACL SETUSER >pass word), and trimming them would make a valid password wrong.
func TrimCredential(s string) string { return strings.TrimRight(s, "\r\n") }

// ReadSecretFile returns a mounted Secret key through TrimCredential. An empty value is an
// error. The content never goes into an error.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := TrimCredential(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// CredentialsProvider is what go-redis calls for the username and password whenever it dials
// (redis.Options.CredentialsProviderContext).
type CredentialsProvider = func(context.Context) (username, password string, err error)

// CheckCredentialFiles reports a username without a password: AUTH takes a password, with
// or without a username. Keys in the error start with prefix, as in Endpoint.Resolve.
func CheckCredentialFiles(usernameFile, passwordFile, prefix string) error {
	if usernameFile != "" && passwordFile == "" {
		return fieldError(prefix, "usernameFile", "requires "+prefix+"passwordFile (AUTH takes a username and a password)")
	}
	return nil
}

// FileCredentials returns the provider that reads the files at every dial, so that a
// rotated Secret (kubelet swaps the files) needs no restart, or nil when neither file is
// set. It reads them once now, so that a missing file fails at start-up under its key. A
// later read that fails is marked ErrCredentials (ClassAuth).
func FileCredentials(usernameFile, passwordFile, prefix string) (CredentialsProvider, error) {
	if err := CheckCredentialFiles(usernameFile, passwordFile, prefix); err != nil {
		return nil, err
	}
	if passwordFile == "" {
		return nil, nil
	}
	read := func() (username, password string, err error) {
		if usernameFile != "" {
			if username, err = ReadSecretFile(usernameFile); err != nil {
				return "", "", wrapField(prefix, "usernameFile", err)
			}
		}
		if password, err = ReadSecretFile(passwordFile); err != nil {
			return "", "", wrapField(prefix, "passwordFile", err)
		}
		return username, password, nil
	}
	if _, _, err := read(); err != nil {
		return nil, err
	}
	return func(context.Context) (string, string, error) {
		username, password, err := read()
		if err != nil {
			return "", "", fmt.Errorf("%w: %w", ErrCredentials, err)
		}
		return username, password, nil
	}, nil
}

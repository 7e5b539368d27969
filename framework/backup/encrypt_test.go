package backup

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// A weak key encrypts no new backup, while a backup taken with one before the rule (the fixture,
// written with a 20-byte key by the code of that time) still decrypts.
func TestWeakKeysEncryptNothingNewAndOldBackupsStillDecrypt(t *testing.T) {
	old, err := os.ReadFile("testdata/weak-key-20-bytes.enc")
	if err != nil {
		t.Fatal(err)
	}
	r, err := newDecryptReader(bytes.NewReader(old), []byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(r); err != nil || string(plain) != "taken before keys had to be strong\n" {
		t.Fatalf("the old backup reads %q, %v", plain, err)
	}
	for name, key := range map[string]string{
		"20 bytes":        "0123456789abcdef0123",
		"a pattern":       strings.Repeat("ab", 24),
		"a padded phrase": "password" + strings.Repeat("!", 32),
	} {
		if _, err := newEncryptWriter(io.Discard, []byte(key)); err == nil || !strings.Contains(err.Error(), "openssl rand") {
			t.Errorf("%s: encrypting a new backup with it: %v, want a refusal that says how to make a key", name, err)
		}
	}
	for _, key := range []string{"0123456789abcdef0123456789abcdef", "q3Yb0m4tXj9kP2Lw8sVn1Rz6Hc5Ud7Ge0Af3Ti9Ky4M="} {
		if err := CheckKey([]byte(key)); err != nil {
			t.Errorf("%q: %v", key, err)
		}
	}
}

package agent

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

const scramIterations = 4096

// scramVerifier returns PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5803), which
// ALTER ROLE ... PASSWORD accepts as is: the clear password never reaches the server, so no
// statement log can contain it.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return verifierWithSalt(password, salt)
}

// Verifier is the SCRAM-SHA-256 verifier of a binding user's password, with a salt derived from
// the user and password: the same pair always gives the same verifier, so the agent can tell an
// up-to-date role by comparing stored forms, and writes nothing then. The salt still differs
// between users and passwords, which is all a salt is for.
func Verifier(user, password string) string {
	h := hmac.New(sha256.New, []byte(password))
	h.Write([]byte("datafleet scram salt\x00" + user))
	v, err := verifierWithSalt(password, h.Sum(nil)[:16])
	if err != nil {
		panic(err) // pbkdf2 fails only for invalid parameters, which are constants here
	}
	return v
}

func verifierWithSalt(password string, salt []byte) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(stored[:]), b64(server)), nil
}

package agent

import (
	"strings"
	"testing"
)

// What pg_restore and psql print when a row or a role fails: the error stays, the row data and
// the statement (with a password verifier) do not.
func TestToolErrorsKeepNoRowsOrStatements(t *testing.T) {
	out := `pg_restore: error: COPY failed for table "cards": ERROR:  new row for relation "cards" violates check constraint "luhn"
DETAIL:  Failing row contains (4111111111111111, alice).
CONTEXT:  COPY cards, line 1: "4111111111111111	alice"
psql:<stdin>:12: ERROR:  syntax error at or near "PASSWORD"
LINE 1: ALTER ROLE x PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy'
                     ^
STATEMENT:  ALTER ROLE x PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy'
`
	got := toolErrors([]byte(out))
	for _, secret := range []string{"4111111111111111", "alice", "SCRAM-SHA-256"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q is in %q", secret, got)
		}
	}
	for _, kept := range []string{`violates check constraint "luhn"`, `syntax error at or near "PASSWORD"`} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q lost from %q", kept, got)
		}
	}
	if got := toolErrors([]byte(strings.Repeat("ERROR: x", 1000))); len(got) > maxToolErrors+4 {
		t.Errorf("%d bytes", len(got))
	}
}

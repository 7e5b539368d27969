package agent

import "strings"

// maxToolErrors bounds what a tool's errors add to an error message.
const maxToolErrors = 2 << 10

// toolErrors is what pg_dump, pg_restore or psql said, cut down for an error that reaches a
// Backup's or Restore's status, events and the Job's termination message: their error lines
// only, at most maxToolErrors bytes. PostgreSQL's DETAIL, CONTEXT, LINE, HINT and STATEMENT lines
// go, and so do psql's echo of a statement: they quote rows ("Failing row contains (…)",
// "COPY t, line 1: …") and statements (a role's password verifier), which are the tenants' data.
func toolErrors(out []byte) string {
	var kept []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if !strings.Contains(line, "ERROR:") && !strings.Contains(line, "FATAL:") && !strings.Contains(line, "error:") {
			continue
		}
		if strings.Contains(line, "DETAIL:") || strings.Contains(line, "CONTEXT:") || strings.Contains(line, "HINT:") ||
			strings.Contains(line, "STATEMENT:") || strings.Contains(line, "LINE ") {
			continue
		}
		kept = append(kept, line)
	}
	s := strings.Join(kept, "; ")
	if len(s) > maxToolErrors {
		s = s[:maxToolErrors] + " …"
	}
	return s
}

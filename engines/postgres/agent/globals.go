package agent

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// An archive's roles (pg_dumpall --globals-only) are data from a store, which whoever can write
// to the store can forge. They are never run as a script: psql would run a `\!` line as a shell
// command in this pod, and a forged `ALTER ROLE … SUPERUSER` or `GRANT postgres TO …` would hand
// out the operator's privileges. The text is read as tokens, and only these statements are
// rebuilt from them, with identifiers and literals quoted by the agent:
//
//   - CREATE ROLE r; the role is created bare (NOLOGIN) before the data, which its objects need;
//   - ALTER ROLE r WITH …: LOGIN, INHERIT, CREATEDB, CONNECTION LIMIT, VALID UNTIL and PASSWORD
//     are kept; SUPERUSER, CREATEROLE, REPLICATION and BYPASSRLS never are (each restored role is
//     NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS);
//   - ALTER ROLE r [IN DATABASE d] SET p TO …, for settings any user may set (pg_settings context
//     "user"): not session_preload_libraries and the like, which load code into sessions;
//   - GRANT r TO m [WITH …], never of or to the operator's roles or PostgreSQL's predefined pg_*
//     roles (pg_execute_server_program runs programs);
//   - COMMENT ON ROLE r IS '…'.
//
// Tablespaces are left out (named in the summary); SET lines and psql's \restrict and \unrestrict
// are skipped; anything else refuses the archive. Everything but the bare roles is applied in one
// transaction once the data has been restored and checked.

// maxGlobals bounds the roles part: it is read whole, and a few thousand roles are well inside.
const maxGlobals = 16 << 20

// globalsPlan is what an archive's roles part becomes.
type globalsPlan struct {
	roles   []string // created bare before the data
	after   []string // applied once the data is checked
	skipped []string // left out, for the summary
}

// readGlobals reads and rebuilds the roles part; settable are the settings any user may set.
func readGlobals(r io.Reader, settable map[string]bool) (*globalsPlan, error) {
	text, err := bounded.ReadAll(r, maxGlobals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", partGlobals, err)
	}
	toks, err := lexSQL(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", partGlobals, err)
	}
	p := &globalsPlan{}
	for len(toks) > 0 {
		if t := toks[0]; t.kind == tokMeta {
			if cmd := strings.Fields(t.text)[0]; cmd != `\restrict` && cmd != `\unrestrict` {
				return nil, fmt.Errorf("%s: psql meta-command %s is not allowed in a restore", partGlobals, cmd)
			}
			toks = toks[1:]
			continue
		}
		end := slices.IndexFunc(toks, func(t token) bool { return t.kind == tokPunct && t.text == ";" })
		if end < 0 {
			return nil, fmt.Errorf("%s: a statement without its ';' at the end", partGlobals)
		}
		if err := p.statement(statement(toks[:end]), settable); err != nil {
			return nil, fmt.Errorf("%s: %w", partGlobals, err)
		}
		toks = toks[end+1:]
	}
	return p, nil
}

// restorable reports whether a role from an archive may be restored: not the operator's own,
// not PostgreSQL's predefined ones.
func restorable(role string) bool {
	return !operatorRole(role) && !strings.HasPrefix(role, "pg_")
}

func (p *globalsPlan) statement(s statement, settable map[string]bool) error {
	switch {
	case s.keywords("SET"):
		return nil // the dump's session settings
	case s.keywords("CREATE", "TABLESPACE"), s.keywords("ALTER", "TABLESPACE"), s.keywords("COMMENT", "ON", "TABLESPACE"),
		s.keywords("GRANT") && slices.ContainsFunc(s, func(t token) bool { return t.keyword("TABLESPACE") }):
		p.skipped = append(p.skipped, "tablespaces")
		return nil
	case s.keywords("CREATE", "ROLE"):
		role, rest, ok := s[2:].ident()
		if !ok || len(rest) != 0 {
			return s.refuse()
		}
		if restorable(role) {
			p.roles = append(p.roles, role)
		}
		return nil
	case s.keywords("ALTER", "ROLE"):
		role, rest, ok := s[2:].ident()
		if !ok {
			return s.refuse()
		}
		if !restorable(role) {
			return nil
		}
		if rest.keywords("WITH") {
			return p.attributes(role, rest[1:])
		}
		return p.setting(role, rest, settable)
	case s.keywords("GRANT"):
		return p.grant(s)
	case s.keywords("COMMENT", "ON", "ROLE"):
		role, rest, ok := s[3:].ident()
		if !ok || len(rest) != 2 || !rest[0].keyword("IS") || rest[1].kind != tokString {
			return s.refuse()
		}
		if restorable(role) {
			p.after = append(p.after, "COMMENT ON ROLE "+ident(role)+" IS "+literal(rest[1].text))
		}
		return nil
	}
	return s.refuse()
}

// attributes rebuilds ALTER ROLE … WITH from the attributes a restored role may have.
func (p *globalsPlan) attributes(role string, s statement) error {
	kept := []string{"NOSUPERUSER", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS"}
	for len(s) > 0 {
		t := s[0]
		switch w := strings.ToUpper(t.text); {
		case t.kind != tokWord:
			return s.refuse()
		case slices.Contains([]string{"LOGIN", "NOLOGIN", "INHERIT", "NOINHERIT", "CREATEDB", "NOCREATEDB"}, w):
			kept, s = append(kept, w), s[1:]
		case slices.Contains([]string{"NOSUPERUSER", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS"}, w):
			s = s[1:]
		case slices.Contains([]string{"SUPERUSER", "CREATEROLE", "REPLICATION", "BYPASSRLS"}, w):
			p.skipped = append(p.skipped, strings.ToLower(w)+" of role "+role)
			s = s[1:]
		case w == "CONNECTION" && len(s) > 2 && s[1].keyword("LIMIT") && s[2].kind == tokNumber:
			kept, s = append(kept, "CONNECTION LIMIT "+s[2].text), s[3:]
		case w == "VALID" && len(s) > 2 && s[1].keyword("UNTIL") && s[2].kind == tokString:
			kept, s = append(kept, "VALID UNTIL "+literal(s[2].text)), s[3:]
		case w == "PASSWORD" && len(s) > 1 && s[1].kind == tokString:
			kept, s = append(kept, "PASSWORD "+literal(s[1].text)), s[2:]
		case w == "PASSWORD" && len(s) > 1 && s[1].keyword("NULL"):
			kept, s = append(kept, "PASSWORD NULL"), s[2:]
		default:
			return s.refuse()
		}
	}
	p.after = append(p.after, "ALTER ROLE "+ident(role)+" WITH "+strings.Join(kept, " "))
	return nil
}

// setting rebuilds ALTER ROLE r [IN DATABASE d] SET p TO v[, v…] for a setting any user may set.
func (p *globalsPlan) setting(role string, s statement, settable map[string]bool) error {
	target := "ALTER ROLE " + ident(role)
	if s.keywords("IN", "DATABASE") {
		db, rest, ok := s[2:].ident()
		if !ok {
			return s.refuse()
		}
		target += " IN DATABASE " + ident(db)
		s = rest
	}
	if len(s) < 4 || !s[0].keyword("SET") || s[1].kind != tokWord || !s[2].keyword("TO") && !(s[2].kind == tokPunct && s[2].text == "=") {
		return s.refuse()
	}
	name := strings.ToLower(s[1].text)
	var values []string
	for i, t := range s[3:] {
		switch {
		case i%2 == 1 && t.kind == tokPunct && t.text == ",":
		case i%2 == 0 && (t.kind == tokString || t.kind == tokNumber || t.kind == tokWord):
			values = append(values, literal(t.text))
		default:
			return s.refuse()
		}
	}
	if !settable[name] {
		p.skipped = append(p.skipped, "setting "+name+" of role "+role)
		return nil
	}
	p.after = append(p.after, target+" SET "+ident(name)+" TO "+strings.Join(values, ", "))
	return nil
}

// grant rebuilds GRANT r TO m [WITH ADMIN OPTION | WITH opt TRUE|FALSE, …] [GRANTED BY g],
// without GRANTED BY (the restoring superuser grants).
func (p *globalsPlan) grant(s statement) error {
	role, rest, ok := s[1:].ident()
	if !ok || !rest.keywords("TO") {
		return s.refuse()
	}
	member, rest, ok := rest[1:].ident()
	if !ok {
		return s.refuse()
	}
	sql := "GRANT " + ident(role) + " TO " + ident(member)
	if rest.keywords("WITH") {
		var opts []string
		for rest = rest[1:]; len(rest) >= 2 && rest[0].kind == tokWord; {
			opt, val := strings.ToUpper(rest[0].text), strings.ToUpper(rest[1].text)
			if !slices.Contains([]string{"ADMIN", "INHERIT", "SET"}, opt) || !slices.Contains([]string{"OPTION", "TRUE", "FALSE"}, val) ||
				val == "OPTION" && opt != "ADMIN" {
				return s.refuse()
			}
			opts, rest = append(opts, opt+" "+val), rest[2:]
			if len(rest) == 0 || rest[0].kind != tokPunct || rest[0].text != "," {
				break
			}
			rest = rest[1:]
		}
		if len(opts) == 0 {
			return s.refuse()
		}
		sql += " WITH " + strings.Join(opts, ", ")
	}
	if rest.keywords("GRANTED", "BY") {
		_, after, ok := rest[2:].ident()
		if !ok {
			return s.refuse()
		}
		rest = after
	}
	if len(rest) != 0 {
		return s.refuse()
	}
	switch {
	case operatorRole(member):
		return nil // binding users get theirs back from their bindings
	case !restorable(role) || !restorable(member):
		p.skipped = append(p.skipped, "membership of "+member+" in "+role)
		return nil
	}
	p.after = append(p.after, sql)
	return nil
}

// createRoles creates the plan's roles that do not exist, bare: no login, no attribute, no
// password until apply.
func (p *globalsPlan) createRoles(ctx context.Context, conn *pgx.Conn) error {
	for _, role := range p.roles {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s) THEN CREATE ROLE %s NOLOGIN; END IF; END$$`,
			literal(role), ident(role))); err != nil {
			return fmt.Errorf("creating role %s: %w", role, err)
		}
	}
	return nil
}

// apply runs the rebuilt statements in one transaction, with statement logging off (they hold
// password verifiers).
func (p *globalsPlan) apply(ctx context.Context, conn *pgx.Conn) error {
	for _, sql := range unlogged {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, sql := range p.after {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("restoring roles: %s: %w", strings.SplitN(sql, " PASSWORD ", 2)[0], err)
			}
		}
		return nil
	})
}

// userSettings are the settings any user may set (context "user"), which a restore may give a
// role or a database; the others load code or change the server for every session.
func userSettings(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, `SELECT name FROM pg_catalog.pg_settings WHERE context = 'user'`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, n := range names {
		set[strings.ToLower(n)] = true
	}
	return set, nil
}

// The tokens of pg_dumpall's output: words (keywords and unquoted identifiers), quoted
// identifiers, string constants, numbers, punctuation, and psql meta-command lines.
type tokenKind int

const (
	tokWord tokenKind = iota
	tokQuoted
	tokString
	tokNumber
	tokPunct
	tokMeta
)

type token struct {
	kind tokenKind
	text string // unquoted for tokQuoted and tokString
}

func (t token) keyword(k string) bool { return t.kind == tokWord && strings.EqualFold(t.text, k) }

// statement is the tokens of one statement, without its ';'.
type statement []token

func (s statement) keywords(ks ...string) bool {
	if len(s) < len(ks) {
		return false
	}
	for i, k := range ks {
		if !s[i].keyword(k) {
			return false
		}
	}
	return true
}

// ident reads one identifier (an unquoted one as PostgreSQL folds it: lower case).
func (s statement) ident() (string, statement, bool) {
	if len(s) == 0 {
		return "", s, false
	}
	switch s[0].kind {
	case tokQuoted:
		return s[0].text, s[1:], true
	case tokWord:
		return strings.ToLower(s[0].text), s[1:], true
	}
	return "", s, false
}

// refuse is the error for a statement a restore does not run; it names the statement's first
// words, not its literals (a password verifier).
func (s statement) refuse() error {
	var words []string
	for _, t := range s {
		if t.kind != tokWord || len(words) == 4 {
			break
		}
		words = append(words, strings.ToUpper(t.text))
	}
	return fmt.Errorf("a %q statement is not one a restore applies to roles", strings.Join(words, " "))
}

// lexSQL splits text into tokens. String constants are standard (a doubled quote stands for one
// quote); escape strings (E-prefixed) and dollar quoting, which pg_dumpall does not write for
// roles, are refused.
func lexSQL(text string) ([]token, error) {
	var toks []token
	atLineStart := true
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			atLineStart = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '\\' && atLineStart:
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			toks = append(toks, token{tokMeta, text[i : i+end]})
			i += end
			continue
		}
		atLineStart = false
		switch {
		case strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			i += end
		case c == '\'' || c == '"':
			s, n, ok := unquote(text[i:], c)
			if !ok {
				return nil, fmt.Errorf("an unterminated quotation")
			}
			kind := tokString
			if c == '"' {
				kind = tokQuoted
			}
			toks = append(toks, token{kind, s})
			i += n
		case c == ';' || c == ',' || c == '=' || c == '(' || c == ')':
			toks = append(toks, token{tokPunct, string(c)})
			i++
		case c == '-' || c >= '0' && c <= '9':
			n := 1
			for n < len(text[i:]) && (text[i+n] >= '0' && text[i+n] <= '9' || text[i+n] == '.') {
				n++
			}
			toks = append(toks, token{tokNumber, text[i : i+n]})
			i += n
		case c == '_' || c < 0x80 && unicode.IsLetter(rune(c)):
			n := 1
			for n < len(text[i:]) && (text[i+n] == '_' || text[i+n] == '$' || text[i+n] < 0x80 && (unicode.IsLetter(rune(text[i+n])) || unicode.IsDigit(rune(text[i+n])))) {
				n++
			}
			if text[i+n-1] == '$' || n < len(text[i:]) && text[i+n] == '\'' {
				return nil, fmt.Errorf("E'' strings and dollar quoting are not read")
			}
			toks = append(toks, token{tokWord, text[i : i+n]})
			i += n
		default:
			return nil, fmt.Errorf("an unexpected character %q", c)
		}
	}
	return toks, nil
}

// unquote reads a quoted token at the start of s (q doubled inside stands for itself) and
// returns its content and the bytes it took.
func unquote(s string, q byte) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != q {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == q {
			b.WriteByte(q)
			i++
			continue
		}
		return b.String(), i + 1, true
	}
	return "", 0, false
}

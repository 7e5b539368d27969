package agent

import "strings"

// Readers of the SQL forms PostgreSQL stores settings and access lists in (pg_db_role_setting,
// aclitem), for a load that recreates what a dump recorded.

// cutIdent reads one SQL identifier, quoted or not, from the start of s.
func cutIdent(s string) (ident, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		id, n, ok := unquote(s, '"')
		if !ok {
			return "", s, false
		}
		return id, s[n:], true
	}
	end := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == ';' || r == ',' })
	if end <= 0 {
		return "", s, false
	}
	return s[:end], s[end:], true
}

// setSQL is "<target> SET name TO value" for a setting as pg_db_role_setting stores it
// ("name=value"). List-valued settings are stored with their elements quoted as identifiers
// ("$user", public) and are given back element by element, as pg_dump does; any other value is
// one string constant.
func setSQL(target, setting string) (string, bool) {
	name, value, ok := strings.Cut(setting, "=")
	if !ok || name == "" {
		return "", false
	}
	values := []string{value}
	if gucListQuote[strings.ToLower(name)] {
		if values, ok = splitGUCList(value); !ok {
			return "", false
		}
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = literal(v)
	}
	if len(quoted) == 0 {
		quoted = []string{"''"}
	}
	return target + " SET " + ident(name) + " TO " + strings.Join(quoted, ", "), true
}

// gucListQuote are the settings whose elements PostgreSQL quotes as identifiers (GUC_LIST_QUOTE),
// the list pg_dump keeps too.
var gucListQuote = map[string]bool{
	"local_preload_libraries": true, "search_path": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "temp_tablespaces": true, "unix_socket_directories": true,
}

// splitGUCList splits a stored list setting into its elements, unquoting quoted ones.
func splitGUCList(v string) ([]string, bool) {
	const space = " \t\n\r\f\v"
	s := strings.TrimLeft(v, space)
	var out []string
	for s != "" {
		if strings.HasPrefix(s, `"`) {
			id, rest, ok := cutIdent(s)
			if !ok {
				return nil, false
			}
			out, s = append(out, id), rest
		} else {
			end := strings.IndexAny(s, ","+space)
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return nil, false
			}
			out, s = append(out, s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, space)
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, false
		}
		if s = strings.TrimLeft(s[1:], space); s == "" {
			return nil, false
		}
	}
	return out, true
}

// cutIdentUntil reads an aclitem's grantee: quoted like an identifier when it needs to be.
func cutIdentUntil(s string, sep byte) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		id, rest, ok := cutIdent(s)
		return id, rest, ok && strings.HasPrefix(rest, string(sep))
	}
	i := strings.IndexByte(s, sep)
	if i <= 0 {
		return "", s, false
	}
	return s[:i], s[i:], true
}

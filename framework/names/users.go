package names

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// UserPrefix starts the name of every user the operator creates for a binding, so a user it
// created is recognisable among the engine's users.
const UserPrefix = "sb_"

// UserStem is the start of the names of a binding's users: "sb_<name>_<hash>", where name is the
// binding's name in lowercase letters, digits and underscores (at most 30 of them) and the hash
// is 64 bits of the namespace and name. The hash keeps bindings of the same name in two
// namespaces apart, and is long enough that nobody can search for a binding name whose users
// would be another binding's (names longer than 30 characters share a slug). At most 50
// characters; with UserName's suffix a name stays within PostgreSQL's 63-byte identifiers.
func UserStem(namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return UserPrefix + Slug(name, 30) + "_" + hex.EncodeToString(sum[:])[:16]
}

// IsUserOf says whether user is one of the binding's users: its stem, "_", a generation.
func IsUserOf(stem, user string) bool {
	gen, ok := strings.CutPrefix(user, stem+"_")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(gen, 10, 64)
	return err == nil && n >= 0 && strconv.FormatInt(n, 10) == gen
}

// Slug is s in lowercase with every character but letters and digits replaced by an underscore,
// cut to max bytes: safe in any engine's identifiers without quoting (they are quoted anyway).
func Slug(s string, max int) string {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(s))
	if len(slug) > max {
		slug = slug[:max]
	}
	return slug
}

// UserName is the user of a binding's rotation generation.
func UserName(stem string, generation int64) string {
	return stem + "_" + strconv.FormatInt(generation, 10)
}

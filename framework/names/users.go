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
// is of the namespace and name, so bindings of the same name in two namespaces differ. At most 42
// characters; with UserName's suffix a name stays within PostgreSQL's 63-byte identifiers.
func UserStem(namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(name))
	if len(slug) > 30 {
		slug = slug[:30]
	}
	return UserPrefix + slug + "_" + hex.EncodeToString(sum[:])[:8]
}

// UserName is the user of a binding's rotation generation.
func UserName(stem string, generation int64) string {
	return stem + "_" + strconv.FormatInt(generation, 10)
}

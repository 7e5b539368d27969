package agentruntime

import (
	"os"
	"syscall"
)

// Files an agent prepares belong to the engine's user. In a pod the agent already runs as that
// user and owner is nil; tests run the agent as root and pass the engine's user.

// Chown gives path to owner; nil leaves it as it is.
func Chown(path string, owner *syscall.Credential) error {
	if owner == nil {
		return nil
	}
	return os.Chown(path, int(owner.Uid), int(owner.Gid))
}

// MkdirOwned creates dir (and its parents) private to owner.
func MkdirOwned(dir string, owner *syscall.Credential) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return Chown(dir, owner)
}

// WriteFileOwned replaces path with data, with mode and owner: written beside it and renamed
// into place, so the engine never reads half a file.
func WriteFileOwned(path string, data []byte, mode os.FileMode, owner *syscall.Credential) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover may be read-only
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := Chown(tmp, owner); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// Version names the build of the manager binary (the operator and every agent are that one
// binary), set at link time (-ldflags "-X github.com/datafleet-dev/datafleet/framework/agent.Version=…").
// Which binary runs is said by its digest, not by this name: two builds under one name differ.
var Version = "dev"

// Info is what an agent says about itself at PathAgent.
type Info struct {
	// Version and Digest (sha256 of the executable, hex) of the running agent binary.
	Version string `json:"version"`
	Digest  string `json:"digest"`
	// Replaceable: the engine's agent can be replaced while the engine's process runs (the
	// engine implements Adopter), so a new binary PUT to PathAgent upgrades it in place.
	Replaceable bool `json:"replaceable"`
}

// HeaderDigest carries the sha256 (hex) of a binary PUT to PathAgent; the agent refuses a body
// whose digest differs.
const HeaderDigest = "Datafleet-Digest"

// VersionCommand is the manager's subcommand that prints the binary's Info as JSON. An agent runs
// a binary it received with it before it replaces itself with that binary: a binary that cannot
// run here (another architecture, a truncated file) is refused while the old agent still runs.
const VersionCommand = "version"

// Digest is the sha256 (hex) of the file at path.
func Digest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Self is the running binary's Info (Replaceable is the runtime's to say).
func Self() (Info, error) {
	exe, err := os.Executable()
	if err != nil {
		return Info{}, err
	}
	d, err := Digest(exe)
	return Info{Version: Version, Digest: d}, err
}

// Release is the operator's own binary, to which the operator upgrades the agents in place.
type Release struct {
	// Path of the binary, read for each upgrade.
	Path string
	Size int64
	Info Info
}

// SelfRelease is the running binary as a Release.
func SelfRelease() (*Release, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return ReleaseOf(exe, Version)
}

// ReleaseOf is the binary at path, built as version, as a Release.
func ReleaseOf(path, version string) (*Release, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	d, err := Digest(path)
	if err != nil {
		return nil, err
	}
	return &Release{Path: path, Size: fi.Size(), Info: Info{Version: version, Digest: d}}, nil
}

package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azurite's well-known development account (the same in every copy, documented by Microsoft).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is Azure Blob Storage's emulator on loopback with one empty container. It is a
// stand-in for Azure's service (which cannot be reached from here), from Microsoft: it checks the
// shared key and SAS signatures as Azure does.
type Azurite struct {
	Domain    string // 127.0.0.1:port
	Container string
}

// URL is the gocloud.dev/blob URL of the container, sent to the emulator.
func (a *Azurite) URL() string {
	return fmt.Sprintf("azblob://%s?domain=%s&protocol=http&localemu=true", a.Container, a.Domain)
}

// ContainerURL is the container's address, for an administrator's client.
func (a *Azurite) ContainerURL() string {
	return fmt.Sprintf("http://%s/%s/%s", a.Domain, AzuriteAccount, a.Container)
}

// AdminClient is a client of the container with the account's key.
func (a *Azurite) AdminClient(tb testing.TB) *container.Client {
	tb.Helper()
	cred, err := azblob.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(a.ContainerURL(), cred, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func azuriteBinary(tb testing.TB) string {
	if p := os.Getenv("AZURITE_BIN"); p != "" {
		return p
	}
	out, err := exec.Command(filepath.Join(RepoRoot(), "hack", "azurite.sh")).Output()
	if err != nil {
		tb.Fatalf("no Azurite: hack/azurite.sh (it installs Azurite with npm into the cache) failed: %v; or set AZURITE_BIN", err)
	}
	return strings.TrimSpace(string(out))
}

var azuriteListening = regexp.MustCompile(`listens on http://(127\.0\.0\.1:\d+)`)

// StartAzurite runs Azurite's blob server for the test, in memory, with its telemetry off (it
// would send it to Microsoft: test traffic stays on this machine), and creates the container
// "backups".
func StartAzurite(tb testing.TB) *Azurite {
	tb.Helper()
	// The Azure SDK speaks a newer storage API version than this Azurite knows (it refuses those
	// by default); the blob operations a store uses are the same in both.
	cmd := exec.Command(azuriteBinary(tb), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
		"--disableTelemetry", "--silent", "--skipApiVersionCheck")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	// Its errors say why it stopped (a bad option, say): kept for the timeout's message.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	startServer(tb, cmd)
	found := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() { // read to the end: a full pipe would stop Azurite
			if m := azuriteListening.FindStringSubmatch(s.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	a := &Azurite{Container: "backups"}
	select {
	case a.Domain = <-found:
	case <-time.After(60 * time.Second):
		tb.Fatalf("Azurite did not say where it listens within 60 s: %s", stderr.String())
	}
	if _, err := a.AdminClient(tb).Create(context.Background(), nil); err != nil {
		tb.Fatal(err)
	}
	return a
}

// Command dashboards writes the Grafana dashboards the chart ships (monitoring.dashboards) from
// their definitions in Go: `go run ./cmd/dashboards charts/datafleet/files/dashboards` (make
// generate). A test keeps the committed files equal to what this writes, and the end-to-end suite
// runs every panel's query against a real Prometheus scraping the local cluster.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboards <directory>")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// all are the dashboards the chart ships: the fleet's and one per engine.
func all() []dashboard { return []dashboard{fleet(), postgres(), rabbitmq(), mongodb()} }

// Files are the dashboards by file name.
func Files() map[string][]byte {
	out := map[string][]byte{}
	for _, d := range all() {
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			panic(err) // the model has no type that fails to marshal
		}
		out["datafleet-"+d.UID+".json"] = append(b, '\n')
	}
	return out
}

func write(dir string) error {
	for name, b := range Files() {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

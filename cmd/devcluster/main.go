// Command devcluster runs Datafleet locally before a full cluster exists: it starts kube-apiserver
// and etcd from the cached binaries (KUBEBUILDER_ASSETS), installs the CRDs, the chart's VersionCatalogs
// and the samples in docs/samples, writes an admin kubeconfig, then runs the given command (the manager) with
// KUBECONFIG pointing at it until interrupted.
//
//	go run ./cmd/devcluster -- bin/manager
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return errors.New("usage: devcluster -- <command to run against the cluster>")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: use `make run`, which builds kube-apiserver and etcd once and caches them")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{"charts/datafleet/crds"}, ErrorIfCRDPathMissing: true}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	defer func() { _ = env.Stop() }()

	user, err := env.AddUser(envtest.User{Name: "datafleet-dev", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return err
	}
	path := filepath.Join(cache, "datafleet", "devcluster", "kubeconfig")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return err
	}
	c, err := client.New(user.Config(), client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		return err
	}
	// The VersionCatalogs the chart ships, then the samples that use them.
	if err := applyChartCatalogs(context.Background(), c, "charts/datafleet/values.yaml"); err != nil {
		return err
	}
	if err := applySamples(context.Background(), c, "docs/samples"); err != nil {
		return err
	}
	fmt.Printf("\nA local API server is running with the Datafleet CRDs and samples installed.\n"+
		"In another shell:\n\n  export KUBECONFIG=%s\n  kubectl get si,vc -A\n\n"+
		"(kubectl is cached at %s/kubectl.) Press Ctrl-C to stop.\n\n", path, os.Getenv("KUBEBUILDER_ASSETS"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+path)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// applyChartCatalogs creates the VersionCatalogs of the chart's values (catalogs.engines), as the
// chart would: this API server has no Helm release.
func applyChartCatalogs(ctx context.Context, c client.Client, valuesFile string) error {
	b, err := os.ReadFile(valuesFile)
	if err != nil {
		return err
	}
	var values struct {
		Catalogs struct {
			Engines map[string]v1alpha1.VersionCatalogSpec `json:"engines"`
		} `json:"catalogs"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("%s: %w", valuesFile, err)
	}
	for engine, spec := range values.Catalogs.Engines {
		spec.Engine = engine
		cat := &v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: engine}, Spec: spec}
		if err := c.Create(ctx, cat); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("creating the %s VersionCatalog from %s: %w", engine, valuesFile, err)
		}
	}
	return nil
}

// applySamples creates every object in the YAML files of dir (skipping ones that exist).
func applySamples(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(fh, 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				fh.Close()
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetNamespace() == "" && u.GetKind() == "ServiceInstance" {
				u.SetNamespace("default")
			}
			if err := c.Create(ctx, u); client.IgnoreAlreadyExists(err) != nil {
				fh.Close()
				return fmt.Errorf("%s: creating %s %s: %w", f, u.GetKind(), u.GetName(), err)
			}
		}
		fh.Close()
	}
	return nil
}

package primary

import (
	"errors"
	"os"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InClusterKeeper is the keeper of an agent in a pod: it talks to the API server with the pod's
// service account, which may read and update only its instance's Lease (lease, in the pod's
// namespace POD_NAMESPACE), as the member name.
func InClusterKeeper(lease, name string) (*Keeper, error) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" || name == "" {
		return nil, errors.New("agent: --lease needs POD_NAMESPACE and --name (or POD_NAME)")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	c, err := LeaseClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Keeper{Client: c, Key: types.NamespacedName{Namespace: ns, Name: lease}, Identity: name}, nil
}

// LeaseClient is an agent's uncached client for Leases over cfg, whose timeout it sets: a
// backstop under the keeper's own deadlines, so that no request outlives a renewal.
func LeaseClient(cfg *rest.Config) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = CallTimeout
	scheme := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// liveOnMiss is what the validators read through. Gets come from the manager's cache, but a
// NotFound is confirmed with the API server before the webhook refuses on it: the cache lags by a
// watch event, and `kubectl apply -f` of a file holding a VersionCatalog and an instance of it (or an
// instance and its binding) sends the second a few milliseconds after the first. Lists go to the API
// server: the only one is a namespace deletion (rare), where a stale cache would let a protected
// instance's volumes go with its namespace.
type liveOnMiss struct {
	cache, live client.Reader
}

var _ client.Reader = liveOnMiss{}

func (r liveOnMiss) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := r.cache.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		return r.live.Get(ctx, key, obj, opts...)
	}
	return err
}

func (r liveOnMiss) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.live.List(ctx, list, opts...)
}

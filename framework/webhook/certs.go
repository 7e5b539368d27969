package webhook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// RBAC: the chart grants get and patch on its own ValidatingWebhookConfiguration by name
// (templates/rbac.yaml), not through a marker: a marker cannot name the release's configuration.

// Certs is the webhook's own certificate authority, used when cert-manager is not: a CA and a
// serving certificate for the webhook Service in Secrets of the operator's namespace, the
// certificate written to Dir for the webhook server (which reloads it when it changes), and the
// CA written into the ValidatingWebhookConfiguration's caBundle. Every replica runs it (each serves
// webhooks); writes are create-if-absent or guarded by resourceVersion, so replicas agree.
// The Secrets are owned by the ValidatingWebhookConfiguration: uninstalling the chart removes them.
type Certs struct {
	// Client reads and writes directly (no cache): it runs before the manager's cache starts.
	Client client.Client
	// Namespace and Service are the webhook Service's; the certificate names it.
	Namespace, Service string
	ClusterDomain      string
	// ExtraDNSNames are added to the certificate (tests serve on localhost).
	ExtraDNSNames []string
	// Configuration names the ValidatingWebhookConfiguration whose caBundle is kept.
	Configuration string
	// Dir receives tls.crt and tls.key.
	Dir string
	// Retry is how soon a failed attempt is repeated (default one minute).
	Retry time.Duration
	Now   func() time.Time
}

// Ensure makes the certificate current once and says when to renew it.
func (c *Certs) Ensure(ctx context.Context) (renewAt time.Time, err error) {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: c.Configuration}, vwc); err != nil {
		return time.Time{}, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", c.Configuration, err)
	}
	domain := c.ClusterDomain
	if domain == "" {
		domain = certs.DefaultClusterDomain
	}
	res, err := certs.Ensure(ctx, c.Client, certs.Request{
		Namespace: c.Namespace, Instance: c.Service,
		DNSNames: append(certs.DNSNames(c.Namespace, domain, c.Service), c.ExtraDNSNames...),
		Labels:   map[string]string{names.ManagedByLabel: names.ManagedBy},
		Owner: metav1.OwnerReference{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingWebhookConfiguration",
			Name: vwc.Name, UID: vwc.UID},
		Now: c.now(),
	})
	if err != nil {
		return time.Time{}, err
	}
	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: certs.ServerSecretName(c.Service)}, s); err != nil {
		return time.Time{}, err
	}
	for name, data := range map[string][]byte{corev1.TLSCertKey: s.Data[certs.CertKey], corev1.TLSPrivateKeyKey: s.Data[certs.KeyKey]} {
		if err := writeIfChanged(filepath.Join(c.Dir, name), data); err != nil {
			return time.Time{}, err
		}
	}
	return res.RenewAt, c.injectCA(ctx, vwc, s.Data[certs.CAKey])
}

// injectCA writes the CA into every webhook of the configuration that lacks it.
func (c *Certs) injectCA(ctx context.Context, vwc *admissionregistrationv1.ValidatingWebhookConfiguration, ca []byte) error {
	orig := vwc.DeepCopy()
	changed := false
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, ca) {
			vwc.Webhooks[i].ClientConfig.CABundle, changed = ca, true
		}
	}
	if !changed {
		return nil
	}
	if err := c.Client.Patch(ctx, vwc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing the CA into ValidatingWebhookConfiguration %s: %w", vwc.Name, err)
	}
	return nil
}

// Start keeps the certificate current until ctx ends.
func (c *Certs) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-certs")
	for {
		wait := c.retry()
		renewAt, err := c.Ensure(ctx)
		switch {
		case err != nil && !apierrors.IsConflict(err):
			logger.Error(err, "keeping the webhook certificate current", "retryIn", wait)
		case err == nil:
			// Look at least hourly: another replica may have renewed it, or the CA been removed.
			wait = min(time.Until(renewAt), time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// NeedLeaderElection is false: every replica serves webhooks and needs the files.
func (c *Certs) NeedLeaderElection() bool { return false }

// WaitReady ensures the certificate once, retrying until it succeeds or ctx ends: the webhook
// server cannot start without its files. It retries within seconds: at a rollout another replica
// may have just created the CA (a conflict), or the configuration may not exist quite yet.
func (c *Certs) WaitReady(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-certs")
	wait := min(c.retry(), 2*time.Second)
	for {
		_, err := c.Ensure(ctx)
		if err == nil {
			return nil
		}
		logger.Info("preparing the webhook certificate", "error", err.Error(), "retryIn", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("preparing the webhook certificate: %w", err)
		case <-time.After(wait):
		}
	}
}

func (c *Certs) retry() time.Duration {
	if c.Retry > 0 {
		return c.Retry
	}
	return time.Minute
}

func (c *Certs) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// writeIfChanged replaces path atomically (the server's watcher must never read half a file).
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

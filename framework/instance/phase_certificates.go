package instance

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// certificates issues the instance's CA and server certificate before Render mounts them, and
// comes back when the certificate is due for renewal. Turning TLS off keeps the CA, so turning it
// on again keeps the clients' trust.
func (r *Reconciler) certificates(ctx context.Context, s *scope) (bool, error) {
	inst := s.inst
	if inst.Spec.TLS == nil || !inst.Spec.TLS.Enabled {
		s.tls, s.tlsChecked = nil, true
		return false, nil
	}
	srv, ok := r.Engine.(engine.TLSServer)
	if !ok {
		s.fail(ReasonTLSNotSupported, fmt.Sprintf("spec.tls.enabled: the %s engine does not serve TLS yet", r.Engine.Name()))
		return true, nil
	}
	domain := r.ClusterDomain
	if domain == "" {
		domain = certs.DefaultClusterDomain
	}
	now := r.now()
	res, err := certs.Ensure(ctx, r.Client, certs.Request{
		Namespace: inst.Namespace, Instance: inst.Name,
		DNSNames: certs.DNSNames(inst.Namespace, domain, srv.TLSNames(inst)...),
		Labels:   names.InstanceLabels(r.Engine.Name(), inst.Name), Owner: r.ownerRef(inst), Now: now,
	})
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		// Our cache had not seen our own last write yet: look again shortly.
		s.requeue(time.Second)
		return true, nil
	}
	if err != nil {
		return false, describeErr("certificates", err)
	}
	s.requeue(res.RenewAt.Sub(now))
	s.tlsChecked = true
	s.tls = &v1alpha1.InstanceTLSStatus{CAConfigMap: certs.CAName(inst.Name), ServerCertificateNotAfter: &metav1.Time{Time: res.NotAfter}}
	return false, nil
}

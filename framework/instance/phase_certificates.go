package instance

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// certificates issues every instance a CA and its agents a certificate (the agent API is mutual
// TLS, framework/agent), and, when spec.tls.enabled, a server certificate, before Render mounts
// them; it comes back when one is due for renewal. Turning TLS off keeps the CA, so turning it on
// again keeps the clients' trust.
func (r *Reconciler) certificates(ctx context.Context, s *scope) (bool, error) {
	inst := s.inst
	now := r.now()
	req := certs.Request{Namespace: inst.Namespace, Instance: inst.Name,
		Labels: names.InstanceLabels(r.Engine.Name(), inst.Name), Owner: r.ownerRef(inst), Now: now,
		Overlap: r.caOverlap(), RotateCA: inst.Annotations[certs.AnnotationRotateCA], MetricsTokenHash: r.MetricsTokenHash}
	trust, err := certs.EnsureTrust(ctx, r.Client, req)
	if stop, err := r.certificateError(ctx, s, err); stop || err != nil {
		return stop, err
	}
	if trust.Rotation != "" {
		s.requeue(trust.NextStep.Sub(now))
	}
	agentRes, agents, err := certs.EnsureAgent(ctx, r.Client, req, trust)
	if stop, err := r.certificateError(ctx, s, err); stop || err != nil {
		return stop, err
	}
	s.agents = agents
	s.agents.Address = r.AgentAddress
	s.requeue(agentRes.RenewAt.Sub(now))
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
	req.DNSNames = certs.DNSNames(inst.Namespace, domain, srv.TLSNames(inst)...)
	res, err := certs.EnsureServer(ctx, r.Client, req, trust)
	if stop, err := r.certificateError(ctx, s, err); stop || err != nil {
		return stop, err
	}
	s.requeue(res.RenewAt.Sub(now))
	s.tlsChecked = true
	s.tls = &v1alpha1.InstanceTLSStatus{CAConfigMap: certs.CAName(inst.Name), ServerCertificateNotAfter: &metav1.Time{Time: res.NotAfter},
		CANotAfter: &metav1.Time{Time: trust.CA.Cert.NotAfter}, CARotation: trust.Rotation}
	if trust.Rotation != "" {
		s.tls.CARotationNextStep = &metav1.Time{Time: trust.NextStep}
	}
	return false, nil
}

// DefaultCAOverlap is how long a CA rotation trusts both CAs unless the operator is told otherwise.
const DefaultCAOverlap = 14 * 24 * time.Hour

func (r *Reconciler) caOverlap() time.Duration {
	if r.CAOverlap > 0 {
		return r.CAOverlap
	}
	return DefaultCAOverlap
}

// certificateError sorts out a failed certificates.Ensure: a foreign object in the way fails the
// instance until it goes, our own lagging cache is looked at again shortly.
func (r *Reconciler) certificateError(ctx context.Context, s *scope, err error) (bool, error) {
	inst := s.inst
	if apierrors.IsAlreadyExists(err) {
		named := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: inst.Namespace, Name: name} }
		if foreign, err := r.foreignObject(ctx, &corev1.Secret{ObjectMeta: named(certs.CAName(inst.Name))},
			&corev1.ConfigMap{ObjectMeta: named(certs.CAName(inst.Name))}, &corev1.Secret{ObjectMeta: named(certs.ServerSecretName(inst.Name))},
			&corev1.Secret{ObjectMeta: named(certs.AgentSecretName(inst.Name))}); err != nil || foreign != "" {
			if err != nil {
				return false, describeErr("certificates", err)
			}
			// Nothing watches an unlabelled object: look again now and then for it to go.
			s.fail(ReasonForeignObject, foreign+" exists but was not created by Datafleet (it lacks the label "+
				names.ManagedByLabel+"="+names.ManagedBy+"), so the operator neither uses nor replaces it: delete it, and the instance gets its own")
			s.requeue(foreignRecheck)
			return true, nil
		}
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		// Our cache had not seen our own last write yet: look again shortly.
		s.requeue(time.Second)
		return true, nil
	}
	if err != nil {
		return false, describeErr("certificates", err)
	}
	return false, nil
}

// foreignRecheck is how often an instance held up by a foreign object looks for it to be gone.
const foreignRecheck = 30 * time.Second

// foreignObject names the first of objs (named, otherwise empty) that exists without Datafleet's
// label. The manager's cache holds only labelled objects, so to the operator such an object is
// absent, yet creating it fails with AlreadyExists however often it is tried. Without an
// APIReader (tests that give none) nothing is foreign.
func (r *Reconciler) foreignObject(ctx context.Context, objs ...client.Object) (string, error) {
	if r.APIReader == nil {
		return "", nil
	}
	for _, o := range objs {
		err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(o), o)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		if o.GetLabels()[names.ManagedByLabel] != names.ManagedBy {
			gvk, err := apiutil.GVKForObject(o, r.Scheme)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s %s/%s", gvk.Kind, o.GetNamespace(), o.GetName()), nil
		}
	}
	return "", nil
}

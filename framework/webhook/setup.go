// Package webhook is the manager's validating admission webhook, for what CRD schemas and CEL
// cannot check because it depends on other objects, and the certificate it serves with when
// cert-manager does not provide one.
package webhook

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// Where the validators are served; the chart's ValidatingWebhookConfiguration points at them.
const (
	InstancePath  = "/validate-serviceinstance"
	BindingPath   = "/validate-servicebinding"
	NamespacePath = "/validate-namespace"
	PlanPath      = "/validate-backupplan"
	StorePath     = "/validate-backupstore"
)

// Setup registers the validators with the manager's webhook server; stores is the platform's
// BackupStore policy.
func Setup(mgr ctrl.Manager, engines []engine.Engine, stores store.Policy) error {
	byName := engine.ByName(engines)
	reader := liveOnMiss{cache: mgr.GetClient(), live: mgr.GetAPIReader()}
	err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.ServiceInstance{}).
		// The catalog and the plan are read from the API server: see InstanceValidator.
		WithValidator(&InstanceValidator{Client: mgr.GetAPIReader(), Clock: clock.RealClock{}, Engines: byName}).
		WithValidatorCustomPath(InstancePath).
		Complete()
	if err != nil {
		return err
	}
	err = ctrl.NewWebhookManagedBy(mgr, &v1alpha1.ServiceBinding{}).
		WithValidator(&BindingValidator{Client: reader, Engines: byName}).
		WithValidatorCustomPath(BindingPath).
		Complete()
	if err != nil {
		return err
	}
	err = ctrl.NewWebhookManagedBy(mgr, &corev1.Namespace{}).
		WithValidator(&NamespaceValidator{Client: reader}).
		WithValidatorCustomPath(NamespacePath).
		Complete()
	if err != nil {
		return err
	}
	err = ctrl.NewWebhookManagedBy(mgr, &v1alpha1.BackupPlan{}).
		WithValidator(&PlanValidator{Clock: clock.RealClock{}}).
		WithValidatorCustomPath(PlanPath).
		Complete()
	if err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &v1alpha1.BackupStore{}).
		WithValidator(&StoreValidator{Policy: stores}).
		WithValidatorCustomPath(StorePath).
		Complete()
}

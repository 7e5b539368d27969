package engine

// What the framework does with the objects an engine renders: the scheme they belong to, and the
// namespace, labels and owner every one of them is given.

import (
	"maps"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// NewScheme returns a scheme with the Kubernetes built-in kinds and Datafleet's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Decorate sets namespace, the standard labels and the controller owner reference. Doing it here
// rather than in each engine keeps engines thin and makes it impossible for one to forget.
func Decorate(scheme *runtime.Scheme, engineName string, inst *v1alpha1.ServiceInstance, version string, o client.Object) error {
	o.SetNamespace(inst.Namespace)
	l := names.Standard(engineName, inst.Name, version)
	maps.Copy(l, o.GetLabels()) // the engine's own labels (component, ...) are kept
	maps.Copy(l, names.InstanceLabels(engineName, inst.Name))
	o.SetLabels(l)
	o.SetOwnerReferences(nil)
	return controllerutil.SetControllerReference(inst, o, scheme)
}

package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// StoreValidator refuses a BackupStore the platform's store policy does not allow (the operator's
// own cloud identity, an endpoint not on the list, an import outside the namespaces listed), naming
// the setting that would allow it. The store controller refuses the same (StoreNotAllowed,
// ImportNotAllowed), for stores admitted before the policy.
type StoreValidator struct {
	Policy store.Policy
}

var _ admission.Validator[*v1alpha1.BackupStore] = &StoreValidator{}

var storeURLPath = field.NewPath("spec", "url")

// ValidateCreate checks the store against the policy.
func (v *StoreValidator) ValidateCreate(_ context.Context, bs *v1alpha1.BackupStore) (admission.Warnings, error) {
	return nil, v.check(bs)
}

// ValidateUpdate checks the store against the policy when its URL or credentials change.
func (v *StoreValidator) ValidateUpdate(_ context.Context, old, bs *v1alpha1.BackupStore) (admission.Warnings, error) {
	if bs.DeletionTimestamp != nil || old.Spec.URL == bs.Spec.URL && (old.Spec.CredentialsSecretRef == nil) == (bs.Spec.CredentialsSecretRef == nil) &&
		(old.Spec.ImportBackups || !bs.Spec.ImportBackups) {
		return nil, nil
	}
	return nil, v.check(bs)
}

// ValidateDelete allows every deletion.
func (v *StoreValidator) ValidateDelete(context.Context, *v1alpha1.BackupStore) (admission.Warnings, error) {
	return nil, nil
}

func (v *StoreValidator) check(bs *v1alpha1.BackupStore) error {
	if err := v.Policy.Check(bs.Spec.URL, bs.Spec.CredentialsSecretRef != nil); err != nil {
		return invalid("BackupStore", bs.Name, field.ErrorList{field.Forbidden(storeURLPath, err.Error())})
	}
	if bs.Spec.ImportBackups {
		if err := v.Policy.ImportAllowed(bs.Namespace); err != nil {
			return invalid("BackupStore", bs.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "importBackups"), err.Error())})
		}
	}
	return nil
}

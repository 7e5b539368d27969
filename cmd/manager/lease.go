package main

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const leaderElectionID = "manager.datafleet.dev"

// ownLeaseBySA makes the manager's ServiceAccount the owner of the leader-election Lease, creating the
// Lease if needed, so that the garbage collector removes it together with the chart. The manager cannot
// delete it itself on uninstall: Helm deletes its RBAC at the same moment as its pod. Leader election
// updates the Lease in place and keeps the owner reference.
func ownLeaseBySA(cfg *rest.Config, namespace, serviceAccount string) error {
	if namespace == "" || serviceAccount == "" {
		return nil // not running from the chart: nothing owns the manager
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owner, err := managerOwner(ctx, cs, namespace, serviceAccount)
	if err != nil {
		return err
	}
	leases := cs.CoordinationV1().Leases(namespace)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaderElectionID, Namespace: namespace,
		OwnerReferences: []metav1.OwnerReference{*owner}}}
	_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing, err := leases.Get(ctx, leaderElectionID, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, o := range existing.OwnerReferences {
		if o.UID == owner.UID {
			return nil
		}
	}
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ServiceAccount","name":%q,"uid":%q}]}}`, owner.Name, owner.UID)
	_, err = leases.Patch(ctx, leaderElectionID, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// managerOwner is an owner reference to the manager's ServiceAccount, which the chart owns: what it
// owns goes with the chart.
func managerOwner(ctx context.Context, cs kubernetes.Interface, namespace, serviceAccount string) (*metav1.OwnerReference, error) {
	sa, err := cs.CoreV1().ServiceAccounts(namespace).Get(ctx, serviceAccount, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the manager's ServiceAccount: %w", err)
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "ServiceAccount", Name: sa.Name, UID: sa.UID}, nil
}

package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// A Backup or Restore that waits for something (its store's probe, the Backup it restores) looks
// again at its retry (30 s for a Backup, 15 s for a Restore); these watches wake it when what it
// waits for happens, so that a store that turns Ready, or a Backup that finishes, moves what
// waits on it at once. The store controller creates the Backups it imports before it writes its
// own Ready condition, so without the wake every imported Backup of a new store waited a retry.

// storeTurnedReady passes a BackupStore update whose Ready condition turned True. Creation is not
// watched: a store is never created Ready, and after a restart every Backup is reconciled anyway.
var storeTurnedReady = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	DeleteFunc: func(event.DeleteEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return storeReady(e.ObjectNew) && !storeReady(e.ObjectOld)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// backupFinished passes a Backup update that made it Completed or Failed.
var backupFinished = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	DeleteFunc: func(event.DeleteEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, cur := e.ObjectOld.(*v1alpha1.Backup), e.ObjectNew.(*v1alpha1.Backup)
		return old.Status.Phase != cur.Status.Phase && (cur.Status.Phase == v1alpha1.BackupCompleted || cur.Status.Phase == v1alpha1.BackupFailed)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// storeReady says whether o is a BackupStore whose probe succeeded.
func storeReady(o client.Object) bool {
	bs, ok := o.(*v1alpha1.BackupStore)
	return ok && meta.IsStatusConditionTrue(bs.Status.Conditions, v1alpha1.ConditionReady)
}

// notStarted is a run that has not started: the only ones a store or a Backup can hold up. A run
// whose status the cache does not show yet (phase "") counts: it may be reading the store now.
func notStarted(st v1alpha1.RunStatus) bool {
	return st.Phase == "" || st.Phase == v1alpha1.BackupPending
}

// wakeBackups enqueues the Backups of the store's namespace that have not started.
func wakeBackups(c client.Reader) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.BackupList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if notStarted(list.Items[i].Status.RunStatus) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	})
}

// wakeRestores enqueues the Restores of the namespace that have not started and that the event's
// object may hold up: every one for a store, the ones that restore it for a Backup.
func wakeRestores(c client.Reader) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.RestoreList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		_, isBackup := o.(*v1alpha1.Backup)
		var reqs []reconcile.Request
		for i := range list.Items {
			rs := &list.Items[i]
			if notStarted(rs.Status.RunStatus) && (!isBackup || rs.Spec.BackupRef.Name == o.GetName()) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(rs)})
			}
		}
		return reqs
	})
}

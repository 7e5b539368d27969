package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch

// A physical backup restored in place (spec.target.inPlace, confirmed by the instance's name) is
// recovered by the instance's own members, as a new instance's first member recovers one: the
// Restore writes the recovery's Secret naming itself (backup.RecoveryConfig.InPlace), annotates the
// instance (workload.RecoveryAnnotation, which mounts the Secret in its pods and stays, and
// workload.InPlaceRecoveryAnnotation while the restore runs), and, once the StatefulSet's pods
// mount it, deletes every pod that started before the Secret: all at once, since the data of every
// member is replaced and none may serve or be copied from meanwhile. The engine then names the
// member that recovers (PostgreSQL: on its primary lease, once no old pod is left); the others
// clone it. The restore is done when every pod restarted for it is ready and the instance became
// Ready after the last of them started; then the Secret and the in-place annotation go, and the
// bindings ensure their users again, as after a logical restore in place.

// recoveredInPlace runs and follows an in-place restore of a physical backup.
func (r *RestoreReconciler) recoveredInPlace(ctx context.Context, rs *v1alpha1.Restore, b *v1alpha1.Backup, bs *v1alpha1.BackupStore,
	inst *v1alpha1.ServiceInstance, run run) (time.Duration, error) {
	id := string(rs.UID)
	if rs.Status.StartTime == nil { // once: running stamps the start, from which the restore's time counts
		if err := r.writeRecoverySecret(ctx, rs, b, bs, inst, inst, id); err != nil {
			return 0, err
		}
		run.running(fmt.Sprintf("instance %q restarts every pod and recovers in place from physical backup %q and the archived log to %s",
			inst.Name, b.Name, targetOf(rs)))
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inst.Namespace, Name: workload.RecoverySecretName(inst)}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return run.fail(ReasonInstanceGone, fmt.Sprintf("the recovery's Secret %q was deleted before the restore finished", workload.RecoverySecretName(inst)))
		}
		return 0, err
	}
	if inst.Annotations[workload.InPlaceRecoveryAnnotation] != id || !workload.Recovers(inst) {
		before := inst.DeepCopy()
		metav1.SetMetaDataAnnotation(&inst.ObjectMeta, workload.InPlaceRecoveryAnnotation, id)
		if !workload.Recovers(inst) {
			metav1.SetMetaDataAnnotation(&inst.ObjectMeta, workload.RecoveryAnnotation, b.Name)
		}
		if err := r.Client.Patch(ctx, inst, client.MergeFrom(before)); err != nil {
			return 0, err
		}
	}
	labels := client.MatchingLabels(names.InstanceLabels(inst.Spec.Engine, inst.Name))
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(inst.Namespace), labels); err != nil {
		return 0, err
	}
	if old := workload.NotRestartedFor(pods.Items, secret); len(old) > 0 {
		return r.restartForRecovery(ctx, rs, inst, secret, labels, pods.Items, old, run)
	}
	if why := notRecovered(inst, pods.Items); why != "" {
		return r.recoveryDeadline(rs, inst, why, run)
	}
	if err := r.Client.Delete(ctx, secret, client.Preconditions{UID: &secret.UID}); client.IgnoreNotFound(err) != nil {
		return 0, err
	}
	// Bindings of the instance ensure their users again: the recovered data has the users and
	// passwords of the target's time.
	before := inst.DeepCopy()
	delete(inst.Annotations, workload.InPlaceRecoveryAnnotation)
	metav1.SetMetaDataAnnotation(&inst.ObjectMeta, RestoredAnnotation, rs.Name)
	if err := r.Client.Patch(ctx, inst, client.MergeFrom(before)); err != nil {
		return 0, err
	}
	run.succeed(fmt.Sprintf("instance %q recovered in place from physical backup %q and the archived log to %s", inst.Name, b.Name, targetOf(rs)))
	return 0, nil
}

// restartForRecovery deletes the instance's pods that started before the recovery's Secret, once
// its StatefulSets' pod templates mount it (a pod re-created from an older template would not read
// it, and would be deleted again).
func (r *RestoreReconciler) restartForRecovery(ctx context.Context, rs *v1alpha1.Restore, inst *v1alpha1.ServiceInstance,
	secret *corev1.Secret, labels client.MatchingLabels, pods []corev1.Pod, old []string, run run) (time.Duration, error) {
	stss := &appsv1.StatefulSetList{}
	if err := r.Client.List(ctx, stss, client.InNamespace(inst.Namespace), labels); err != nil {
		return 0, err
	}
	for i := range stss.Items {
		if sts := &stss.Items[i]; !workload.MountsSecret(sts.Spec.Template.Spec.Volumes, secret.Name) || sts.Status.ObservedGeneration < sts.Generation {
			return r.recoveryDeadline(rs, inst, fmt.Sprintf("waiting for StatefulSet %q to mount the recovery", sts.Name), run)
		}
	}
	for i := range pods {
		if p := &pods[i]; slices.Contains(old, p.Name) && p.DeletionTimestamp.IsZero() {
			if err := workload.Replace(ctx, r.Client, p); err != nil {
				return 0, err
			}
		}
	}
	return r.recoveryDeadline(rs, inst, "waiting for "+strings.Join(old, ", ")+" to restart with the recovery", run)
}

// notRecovered says what an in-place recovery still waits for: every pod restarted for it (the
// caller checked) and ready, and the instance Ready since the last of them started (its status
// from before the restart says nothing of the recovered data). Times have whole seconds: Ready
// must have turned in a later second than the last pod's creation, which a pod that has to start,
// bootstrap and be seen by the operator always leaves behind.
func notRecovered(inst *v1alpha1.ServiceInstance, pods []corev1.Pod) string {
	if n := inst.DesiredReplicas(); int32(len(pods)) < n {
		return fmt.Sprintf("%d of %d pods exist", len(pods), n)
	}
	var newest metav1.Time
	for i := range pods {
		p := &pods[i]
		if !workload.PodReady(p) {
			return fmt.Sprintf("waiting for %s to be ready", p.Name)
		}
		if newest.Before(&p.CreationTimestamp) {
			newest = p.CreationTimestamp
		}
	}
	if c := findReady(inst.Status.Conditions); !instanceReady(inst) || !c.LastTransitionTime.After(newest.Time) {
		return fmt.Sprintf("waiting for instance %q to be Ready with the recovered data", inst.Name)
	}
	return ""
}

// recoveryDeadline fails an in-place restore that did not finish within spec.timeout, and
// otherwise says what it waits for. A failed one leaves the instance as it is: the member that
// recovers keeps its former data aside until its server promoted itself (the engine's docs say
// where), and another in-place Restore takes over from it.
func (r *RestoreReconciler) recoveryDeadline(rs *v1alpha1.Restore, inst *v1alpha1.ServiceInstance, why string, run run) (time.Duration, error) {
	left := restoreTimeLeft(rs, run)
	if left <= 0 {
		return run.fail(job.ReasonDeadlineExceeded, fmt.Sprintf("instance %q did not recover in place within %s (spec.timeout): %s; its pods' logs say why, and the data it had is kept (see docs/backups.md)",
			inst.Name, timeoutOr(rs.Spec.Timeout, DefaultRestoreTimeout), why))
	}
	run.progress(why)
	return min(run.retry, left), nil
}

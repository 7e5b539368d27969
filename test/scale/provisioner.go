package scale

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// provisionerName is the StorageClass's provisioner: the harness itself.
const provisionerName = "scale.datafleet.dev/stand-in"

// provisionVolumes is a stand-in for a CSI provisioner (no volume can exist without a kubelet):
// every claim of the default StorageClass gets a PersistentVolume made for it, which
// kube-controller-manager binds; a released volume is deleted.
func provisionVolumes(tb testing.TB, ctx context.Context, informers cache.Cache, c client.Client) {
	tb.Helper()
	claims, err := informers.GetInformer(ctx, &corev1.PersistentVolumeClaim{})
	if err != nil {
		tb.Fatal(err)
	}
	provision := func(obj any) {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		if !ok || pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil {
			return
		}
		if sc := pvc.Spec.StorageClassName; sc != nil && *sc != storageClass {
			return
		}
		fs := corev1.PersistentVolumeFilesystem
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(pvc.UID)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
				AccessModes:                   pvc.Spec.AccessModes,
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				StorageClassName:              storageClass,
				VolumeMode:                    &fs,
				ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/" + string(pvc.UID)}},
			},
		}
		if err := c.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			tb.Logf("stand-in provisioner: %v", err)
		}
	}
	if _, err := claims.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    provision,
		UpdateFunc: func(_, obj any) { provision(obj) },
	}); err != nil {
		tb.Fatal(err)
	}
	volumes, err := informers.GetInformer(ctx, &corev1.PersistentVolume{})
	if err != nil {
		tb.Fatal(err)
	}
	release := func(obj any) {
		pv, ok := obj.(*corev1.PersistentVolume)
		if !ok || pv.Status.Phase != corev1.VolumeReleased || pv.Spec.StorageClassName != storageClass {
			return
		}
		if err := c.Delete(ctx, pv); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			tb.Logf("stand-in provisioner: %v", err)
		}
	}
	if _, err := volumes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    release,
		UpdateFunc: func(_, obj any) { release(obj) },
	}); err != nil {
		tb.Fatal(err)
	}
}

// Command localpath is the dynamic provisioner behind the local cluster's default StorageClass.
//
// It runs on the node as a host process (test/cluster/cluster.sh starts it) and does what an
// external provisioner and resizer do for a CSI driver, for plain host directories:
//   - a PVC the PV controller hands to "datafleet.dev/local-path" gets a hostPath PV under --dir,
//     a world-writable directory, because hostPath volumes ignore fsGroup and our images run as
//     non-root;
//   - a bound PVC whose request grows gets the new capacity on its PV and in its status (a host
//     directory has no size limit, so expansion only records the size: quotas are not enforced);
//   - a Released PV with reclaimPolicy Delete has its directory removed and is deleted.
//
// The kube-controller-manager's built-in hostPath provisioner was not used: it creates directories
// that only root can write to and cannot expand volumes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

const (
	provisionerName  = "datafleet.dev/local-path"
	annProvisioner   = "volume.kubernetes.io/storage-provisioner"
	annSelectedNode  = "volume.kubernetes.io/selected-node"
	annProvisionedBy = "pv.kubernetes.io/provisioned-by"
)

func main() {
	node := flag.String("node", "", "name of the node whose directories this provisioner hands out")
	dir := flag.String("dir", "", "directory that holds the volumes")
	flag.Parse()
	ctrl.SetLogger(zap.New())
	if err := run(*node, *dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(node, dir string) error {
	if node == "" || dir == "" {
		return errors.New("--node and --dir are required")
	}
	cfg, err := ctrl.GetConfig() // --kubeconfig is controller-runtime's flag
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	p := &provisioner{c: mgr.GetClient(), node: node, dir: dir}
	if err := builder.ControllerManagedBy(mgr).Named("claims").For(&corev1.PersistentVolumeClaim{}).
		Complete(reconcile.Func(p.reconcileClaim)); err != nil {
		return err
	}
	if err := builder.ControllerManagedBy(mgr).Named("volumes").For(&corev1.PersistentVolume{}).
		Complete(reconcile.Func(p.reconcileVolume)); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

type provisioner struct {
	c    client.Client
	node string
	dir  string
}

func (p *provisioner) reconcileClaim(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := p.c.Get(ctx, req.NamespacedName, &pvc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pvc.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	if pvc.Spec.VolumeName == "" {
		return reconcile.Result{}, p.provision(ctx, &pvc)
	}
	return reconcile.Result{}, p.expand(ctx, &pvc)
}

func (p *provisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	// The PV controller sets this annotation once a claim needs a new volume from us; with
	// WaitForFirstConsumer the scheduler also picks the node first.
	if pvc.Annotations[annProvisioner] != provisionerName {
		return nil
	}
	if n, ok := pvc.Annotations[annSelectedNode]; ok && n != p.node {
		return nil
	}
	var sc storageClass
	if err := sc.load(ctx, p.c, pvc); err != nil {
		return err
	}
	name := "pvc-" + string(pvc.UID)
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil { // MkdirAll is subject to the umask
		return err
	}
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annProvisionedBy: provisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: sc.reclaim,
			StorageClassName:              sc.name,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathType}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{p.node}}},
			}}}},
		},
	}
	if err := p.c.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// expand records a grown request on the PV and in the claim's status, as an external resizer would
// for a volume that needs no node-side expansion.
func (p *provisioner) expand(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	want, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || pvc.Status.Phase != corev1.ClaimBound {
		return nil
	}
	have := pvc.Status.Capacity[corev1.ResourceStorage]
	if want.Cmp(have) <= 0 {
		return nil
	}
	var pv corev1.PersistentVolume
	if err := p.c.Get(ctx, types.NamespacedName{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pv.Annotations[annProvisionedBy] != provisionerName || !p.owns(&pv) {
		return nil
	}
	if cur := pv.Spec.Capacity[corev1.ResourceStorage]; want.Cmp(cur) > 0 {
		pv.Spec.Capacity[corev1.ResourceStorage] = want
		if err := p.c.Update(ctx, &pv); err != nil {
			return err
		}
	}
	pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: want}
	pvc.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: want}
	pvc.Status.AllocatedResourceStatuses = nil
	pvc.Status.Conditions = nil
	return p.c.Status().Update(ctx, pvc)
}

func (p *provisioner) reconcileVolume(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pv corev1.PersistentVolume
	if err := p.c.Get(ctx, req.NamespacedName, &pv); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pv.Annotations[annProvisionedBy] != provisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.HostPath == nil {
		return reconcile.Result{}, nil
	}
	if !p.owns(&pv) {
		return reconcile.Result{}, nil // another node's provisioner's
	}
	if err := os.RemoveAll(filepath.Clean(pv.Spec.HostPath.Path)); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, client.IgnoreNotFound(p.c.Delete(ctx, &pv))
}

// owns reports whether the volume is one of this provisioner's directories: with a provisioner per
// node (DATAFLEET_NODES=2), each deletes and expands only the volumes of its own node.
func (p *provisioner) owns(pv *corev1.PersistentVolume) bool {
	return pv.Spec.HostPath != nil &&
		strings.HasPrefix(filepath.Clean(pv.Spec.HostPath.Path), filepath.Clean(p.dir)+string(filepath.Separator))
}

type storageClass struct {
	name    string
	reclaim corev1.PersistentVolumeReclaimPolicy
}

func (s *storageClass) load(ctx context.Context, c client.Client, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.StorageClassName == nil {
		return errors.New("claim has no storage class")
	}
	s.name = *pvc.Spec.StorageClassName
	s.reclaim = corev1.PersistentVolumeReclaimDelete
	var sc storagev1.StorageClass
	if err := c.Get(ctx, types.NamespacedName{Name: s.name}, &sc); err != nil {
		return err
	}
	if sc.ReclaimPolicy != nil {
		s.reclaim = *sc.ReclaimPolicy
	}
	return nil
}

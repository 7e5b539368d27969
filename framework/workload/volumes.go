package workload

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// GrownClaims returns, by claim template name, the sizes the desired StatefulSet asks for that are
// larger than the live one's. Templates only grow (the API refuses a smaller spec.storage.size).
func GrownClaims(live, desired *appsv1.StatefulSet) map[string]resource.Quantity {
	out := map[string]resource.Quantity{}
	for _, d := range desired.Spec.VolumeClaimTemplates {
		for _, l := range live.Spec.VolumeClaimTemplates {
			want, have := d.Spec.Resources.Requests[corev1.ResourceStorage], l.Spec.Resources.Requests[corev1.ResourceStorage]
			if d.Name == l.Name && want.Cmp(have) > 0 {
				out[d.Name] = want
			}
		}
	}
	return out
}

// ClaimOf returns the claim template of the StatefulSet that pvc was made from (it is named
// <template>-<statefulset>-<ordinal>), or nil.
func ClaimOf(sts *appsv1.StatefulSet, pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolumeClaim {
	for i, t := range sts.Spec.VolumeClaimTemplates {
		prefix := fmt.Sprintf("%s-%s-", t.Name, sts.Name)
		if rest, found := strings.CutPrefix(pvc.Name, prefix); found && isOrdinal(rest) {
			return &sts.Spec.VolumeClaimTemplates[i]
		}
	}
	return nil
}

func isOrdinal(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && strconv.Itoa(n) == s
}

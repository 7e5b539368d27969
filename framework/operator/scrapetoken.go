package operator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/framework/names"
)

// ScrapeTokenKey is the scrape token's key in its Secret, which the platform's Prometheus mounts
// (or a PodMonitor names) to scrape the agents.
const ScrapeTokenKey = "token"

// ScrapeToken returns the sha256 (hex) of the fleet's scrape token, kept in the Secret name of
// namespace (the operator's), which it creates with a random token when there is none. Every
// instance's agents get the hash only (certs.Request.MetricsTokenHash). Deleting the Secret and
// restarting the operator rotates the token: each instance's agent Secret is rewritten in place,
// and no pod restarts. owner, when given (the manager's ServiceAccount, which the chart owns), owns
// the Secret, so that uninstalling the chart removes it.
func ScrapeToken(ctx context.Context, c client.Client, namespace, name string, owner *metav1.OwnerReference) (string, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Labels: map[string]string{names.ManagedByLabel: names.ManagedBy}},
			Data: map[string][]byte{ScrapeTokenKey: []byte(hex.EncodeToString(b))}}
		if err = c.Create(ctx, s); apierrors.IsAlreadyExists(err) { // another replica made it first
			err = c.Get(ctx, client.ObjectKeyFromObject(s), s)
		}
	}
	if err == nil && owner != nil && !slices.ContainsFunc(s.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == owner.UID }) {
		s.OwnerReferences = append(s.OwnerReferences, *owner)
		err = c.Update(ctx, s)
	}
	if err != nil {
		return "", fmt.Errorf("the scrape token's Secret %s/%s: %w", namespace, name, err)
	}
	// Prometheus trims a credentials file's whitespace; so does the hash.
	token := bytes.TrimSpace(s.Data[ScrapeTokenKey])
	if len(token) < 16 {
		return "", fmt.Errorf("the scrape token's Secret %s/%s: its %q holds %d bytes, fewer than 16", namespace, name, ScrapeTokenKey, len(token))
	}
	sum := sha256.Sum256(token)
	return hex.EncodeToString(sum[:]), nil
}

// Package secrets creates Secrets whose values the operator generates (replication passwords,
// Erlang cookies, binding passwords): created once with values from crypto/rand, never rewritten,
// so the value a running engine uses stays valid.
package secrets

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// alphabet avoids characters that need quoting in connection strings, config files or URIs.
const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// token returns n characters from crypto/rand over an unambiguous alphanumeric alphabet (about
// 5.8 bits each; 32 of them carry 187 bits).
func token(n int) string {
	b := make([]byte, n)
	max := 256 - 256%len(alphabet) // reject bytes that would bias the choice
	for i := 0; i < n; {
		var one [1]byte
		if _, err := rand.Read(one[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		if int(one[0]) < max {
			b[i] = alphabet[int(one[0])%len(alphabet)]
			i++
		}
	}
	return string(b)
}

// Password returns a new 32-character password from crypto/rand (about 187 bits).
func Password() string { return token(32) }

// EnsureGenerated creates the Secret with a fresh token for each key if it does not exist, and
// returns its values for keys. An existing Secret keeps its values, which may be in use: one kept
// from a deleted instance whose volumes were retained (OrphanGenerated) holds the credentials of
// the data on them, and the new instance adopts it (owner reference) so that it goes with the
// instance from then on. A Secret whose key is missing, empty or holds a control character (which
// would end a line of a configuration file) is refused with an error naming it: nothing valid can
// be in use there. The values are returned so that the caller need not read the Secret back: a
// cache does not hold one created a moment ago (at 500 instances the scale run counted 244
// reconciles failed on that read). They are nil, with no error, when the Secret exists but the
// cache has not seen it yet: a caller that needs them looks again shortly.
func EnsureGenerated(ctx context.Context, c client.Client, key types.NamespacedName, labels map[string]string,
	owner metav1.OwnerReference, keys ...string) (map[string][]byte, error) {
	existing := &corev1.Secret{}
	err := c.Get(ctx, key, existing)
	if err == nil {
		values, err := generatedValues(key, existing, keys)
		if err != nil {
			return nil, err
		}
		return values, adopt(ctx, c, existing, owner)
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{owner}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{},
	}
	for _, k := range keys {
		s.Data[k] = []byte(token(32))
	}
	if err := c.Create(ctx, s); err != nil {
		// Created a moment ago, by the previous reconcile, and not in the cache yet: its values,
		// not these, are the Secret's; nil values say to look again.
		return nil, client.IgnoreAlreadyExists(err)
	}
	return generatedValues(key, s, keys)
}

// generatedValues are the Secret's values for keys, each checked.
func generatedValues(key types.NamespacedName, s *corev1.Secret, keys []string) (map[string][]byte, error) {
	values := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v := s.Data[k]
		if len(v) == 0 || strings.IndexFunc(string(v), unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("Secret %s: key %q is missing, empty or holds a control character: set it to a valid value or delete the Secret", key, k)
		}
		values[k] = v
	}
	return values, nil
}

// adopt adds owner to the Secret's owner references when it is not there.
func adopt(ctx context.Context, c client.Client, s *corev1.Secret, owner metav1.OwnerReference) error {
	if slices.ContainsFunc(s.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == owner.UID }) {
		return nil
	}
	patch := client.MergeFromWithOptions(s.DeepCopy(), client.MergeFromWithOptimisticLock{})
	s.OwnerReferences = append(s.OwnerReferences, owner)
	return c.Patch(ctx, s, patch)
}

// OrphanGenerated removes the owner reference to owner (by UID) from the Secrets in namespace
// that match selector, so that the garbage collector keeps them after the owner is gone: a
// deleted instance whose volumes are retained keeps the credentials of the data on them, for
// the instance that is created again over them (EnsureGenerated adopts them back).
func OrphanGenerated(ctx context.Context, c client.Client, namespace string, selector map[string]string, owner types.UID) error {
	list := &corev1.SecretList{}
	if err := c.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels(selector)); err != nil {
		return err
	}
	for i := range list.Items {
		s := &list.Items[i]
		refs := slices.DeleteFunc(slices.Clone(s.OwnerReferences), func(r metav1.OwnerReference) bool { return r.UID == owner })
		if len(refs) == len(s.OwnerReferences) {
			continue
		}
		patch := client.MergeFromWithOptions(s.DeepCopy(), client.MergeFromWithOptimisticLock{})
		s.OwnerReferences = refs
		if err := c.Patch(ctx, s, patch); err != nil {
			return err
		}
	}
	return nil
}

// Value reads one key of a Secret, such as a generated administrator password.
func Value(ctx context.Context, c client.Reader, key types.NamespacedName, dataKey string) (string, error) {
	secret := &corev1.Secret{}
	if err := c.Get(ctx, key, secret); err != nil {
		return "", err
	}
	return string(secret.Data[dataKey]), nil
}

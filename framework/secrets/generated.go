// Package secrets creates Secrets whose values the operator generates (replication passwords,
// Erlang cookies, binding passwords): created once with values from crypto/rand, never rewritten,
// so the value a running engine uses stays valid.
package secrets

import (
	"context"
	"crypto/rand"

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

// EnsureGenerated creates the Secret with a fresh token for each key if it does not exist. An
// existing Secret is left alone, even if keys are missing: its values may be in use.
func EnsureGenerated(ctx context.Context, c client.Client, key types.NamespacedName, labels map[string]string,
	owner metav1.OwnerReference, keys ...string) error {
	err := c.Get(ctx, key, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		return err
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
	return client.IgnoreAlreadyExists(c.Create(ctx, s))
}

package binding

import (
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// Provider is the Secret's servicebinding.io provider key.
const Provider = "datafleet"

// Annotations on the binding's Secret that carry the rotation state. They live with the
// credentials they describe, so the state survives anything that loses the binding's status.
const (
	AnnotationGeneration      = "datafleet.dev/credential-generation"
	AnnotationPreviousUser    = "datafleet.dev/previous-username"
	AnnotationPreviousExpires = "datafleet.dev/previous-expires"
)

// BindingLabel names the binding a Secret belongs to.
const BindingLabel = "datafleet.dev/binding"

// credentials is what the Secret says about the binding's users.
type credentials struct {
	generation      int64
	user, password  string
	previousUser    string
	previousExpires time.Time
}

// readCredentials reads the rotation state from a Secret the binding wrote. ok is false when the
// Secret holds no complete credentials (a Secret from before a crash is complete or absent: it
// is written in one request).
//
// The binding's namespace can edit the Secret, so only what cannot reach beyond the binding is
// taken from it: the user names are derived from the binding's stem (names.UserName), never read
// back, and a previous user that is not one of the binding's is forgotten. An edited username is
// written back as it should be; the password, which only ever opens the binding's own user, is
// kept.
func readCredentials(s *corev1.Secret, stem string) (c credentials, ok bool) {
	if s == nil {
		return c, false
	}
	gen, err := strconv.ParseInt(s.Annotations[AnnotationGeneration], 10, 64)
	if err != nil || gen < 0 {
		return c, false
	}
	c = credentials{generation: gen, user: names.UserName(stem, gen), password: string(s.Data["password"])}
	if prev := s.Annotations[AnnotationPreviousUser]; names.IsUserOf(stem, prev) && prev != c.user {
		c.previousUser = prev
		if t, err := time.Parse(time.RFC3339, s.Annotations[AnnotationPreviousExpires]); err == nil {
			c.previousExpires = t
		}
	}
	return c, c.password != ""
}

// renderSecret is the binding's Secret in the servicebinding.io format (type, provider, host,
// port, username, password, uri, the engine's extra keys, and ca.crt with TLS), with the rotation
// state in annotations. Pure.
func renderSecret(b *v1alpha1.ServiceBinding, bindingType string, conn engine.Connection, c credentials, caPEM []byte) *corev1.Secret {
	data := map[string][]byte{
		"type":     []byte(bindingType),
		"provider": []byte(Provider),
		"host":     []byte(conn.Host),
		"port":     []byte(strconv.Itoa(int(conn.Port))),
		"username": []byte(c.user),
		"password": []byte(c.password),
		"uri":      []byte(conn.URI),
	}
	for k, v := range conn.Extra {
		data[k] = []byte(v)
	}
	if len(caPEM) > 0 {
		data["ca.crt"] = caPEM
	}
	ann := map[string]string{AnnotationGeneration: strconv.FormatInt(c.generation, 10)}
	if c.previousUser != "" {
		ann[AnnotationPreviousUser] = c.previousUser
		ann[AnnotationPreviousExpires] = c.previousExpires.UTC().Format(time.RFC3339)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: secretName(b), Namespace: b.Namespace, Annotations: ann,
			Labels: map[string]string{names.ManagedByLabel: names.ManagedBy, BindingLabel: names.Fit(b.Name, names.MaxDNSLabel)},
		},
		Type: corev1.SecretType("servicebinding.io/" + bindingType),
		Data: data,
	}
}

func secretName(b *v1alpha1.ServiceBinding) string {
	if b.Spec.SecretName != "" {
		return b.Spec.SecretName
	}
	return b.Name
}

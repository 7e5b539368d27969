package enginetest

import (
	"context"

	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/names"
	"github.com/datafleet-dev/datafleet/framework/secrets"
)

// SuperviseServing stands in for an engine's supervisor in tests whose server runs outside any
// pod (a local RabbitMQ node, a FerretDB the test starts): it ensures the instance's generated
// Secret, as the engine's own supervisor would first, and reports the instance serving once its
// StatefulSet is ready (the framework's own observation).
func SuperviseServing(ctx context.Context, s *engine.Supervision, engineName, secretName string, keys ...string) error {
	key := types.NamespacedName{Namespace: s.Instance.Namespace, Name: secretName}
	_, err := secrets.EnsureGenerated(ctx, s.Client, key, names.InstanceLabels(engineName, s.Instance.Name), s.Owner, keys...)
	return err
}

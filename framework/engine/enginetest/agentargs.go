package enginetest

import (
	"flag"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// AgentArgsRoundTrip checks that the plugin's agent parses what its Render puts on the pod, and
// reads back each value: the two sides share one argument struct (fwagent.Flags,
// fwagent.BindFlags), so a flag one side renames fails here, not in a pod. It renders with TLS
// off, on and required; replicas is what the engine's topology allows.
func AgentArgsRoundTrip(t *testing.T, p engine.Plugin, replicas int32) {
	t.Helper()
	for _, tls := range []*v1alpha1.TLSSpec{nil, {Enabled: true}, {Enabled: true, Required: true}} {
		inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "apps"},
			Spec: v1alpha1.ServiceInstanceSpec{Engine: p.Engine.Name(), Version: "1", Replicas: ptr.To(replicas), TLS: tls}}
		objs, err := p.Engine.Render(engine.RenderInput{Instance: inst, Release: catalog.Release{Version: "1", Image: "engine:1"}, AgentImage: "operator:1"})
		if err != nil {
			t.Fatalf("%s: %v", p.Engine.Name(), err)
		}
		rendered := agentArgs(objs)
		if len(rendered) == 0 {
			t.Fatalf("%s: no agent container rendered", p.Engine.Name())
		}
		fs := flag.NewFlagSet("agent", flag.ContinueOnError)
		var listen fwagent.Listen
		fwagent.BindListen(fs, &listen)
		parsed := p.Agent.Args()
		fwagent.BindFlags(fs, parsed)
		if err := fs.Parse(rendered); err != nil {
			t.Fatalf("%s, tls %+v: the agent refuses what Render wrote %q: %v", p.Engine.Name(), tls, rendered, err)
		}
		back := append(fwagent.Flags(parsed), "--"+fwagent.FlagTLSDir+"="+listen.TLSDir)
		for _, a := range rendered {
			if !slices.Contains(back, a) {
				t.Errorf("%s, tls %+v: %s was rendered but parsed as %q", p.Engine.Name(), tls, a, back)
			}
		}
	}
}

// agentArgs are the arguments of the container that runs "manager agent".
func agentArgs(objs []client.Object) []string {
	for _, o := range objs {
		sts, ok := o.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		for _, c := range sts.Spec.Template.Spec.Containers {
			if len(c.Command) > 1 && c.Command[1] == "agent" {
				return c.Args
			}
		}
	}
	return nil
}

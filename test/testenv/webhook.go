package testenv

import (
	"context"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/webhook"
)

// WebhookNamespace is where ServeWebhook keeps the webhook's certificate, as the chart's
// namespace.
const WebhookNamespace = "datafleet-system"

// ServeWebhook serves the manager's webhook for the engines, with the operator's own certificate,
// behind a ValidatingWebhookConfiguration the real API server calls, as the chart installs it;
// the manager's cache is configured by opts. It stops when the test ends.
func ServeWebhook(tb testing.TB, env *Env, opts cache.Options, policy store.Policy, engines ...engine.Engine) *webhook.Certs {
	tb.Helper()
	ctx := context.Background()
	port := FreePort(tb)
	failurePolicy, sideEffects := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	hook := func(resource, path string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name: resource + ".datafleet.dev",
			// The chart points at the Service; envtest's API server reaches the test on localhost.
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://localhost:" + strconv.Itoa(port) + path)},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"datafleet.dev"}, APIVersions: []string{"v1alpha1"},
					Resources: []string{resource}},
			}},
			FailurePolicy: &failurePolicy, SideEffects: &sideEffects, AdmissionReviewVersions: []string{"v1"},
		}
	}
	namespaces := hook("namespaces", webhook.NamespacePath)
	namespaces.Rules = []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}},
	}}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "datafleet"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{hook("serviceinstances", webhook.InstancePath), hook("servicebindings", webhook.BindingPath),
			hook("backupplans", webhook.PlanPath), hook("backupstores", webhook.StorePath), namespaces}}
	for _, o := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: WebhookNamespace}}, vwc} {
		if err := env.Client.Create(ctx, o); err != nil {
			tb.Fatal(err)
		}
	}
	c := &webhook.Certs{Client: env.Client, Namespace: WebhookNamespace, Service: "datafleet-webhook", Configuration: vwc.Name,
		ExtraDNSNames: []string{"localhost"}, Dir: tb.TempDir()}
	if err := c.WaitReady(ctx); err != nil {
		tb.Fatal(err)
	}
	skip := true
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: engine.NewScheme(), Metrics: metricsserver.Options{BindAddress: "0"}, Cache: opts,
		Controller:    config.Controller{SkipNameValidation: &skip},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{Port: port, CertDir: c.Dir}),
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := webhook.Setup(mgr, engines, policy); err != nil {
		tb.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	Eventually(tb, 30*time.Second, func() error { return mgr.GetWebhookServer().StartedChecker()(nil) })
	return c
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// forward forwards a port of 127.0.0.1, chosen by the system, to port of the pod, as
// `kubectl port-forward` does, and returns it with the function that stops the forwarding.
// ctx bounds the setup only.
func forward(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, namespace, pod string, port int) (int, func(), error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return 0, nil, err
	}
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stopCh, ready := make(chan struct{}), make(chan struct{})
	stop := func() { close(stopCh) }
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stopCh, ready, io.Discard, io.Discard)
	if err != nil {
		return 0, nil, err
	}
	failed := make(chan error, 1)
	go func() { failed <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-failed:
		return 0, nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, pod, err)
	case <-ctx.Done():
		stop()
		return 0, nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, pod, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		stop()
		return 0, nil, fmt.Errorf("port-forward to %s/%s: %v", namespace, pod, err)
	}
	return int(ports[0].Local), stop, nil
}

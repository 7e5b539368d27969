//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// jobRecorder keeps every version of every Job of a namespace, and the logs of their pods as they
// finish, while a test runs: the operator deletes a finished Job (and its pod) at once, so a
// search after the fact would find them gone and look at nothing.
type jobRecorder struct {
	mu     sync.Mutex
	text   strings.Builder
	jobs   map[string]bool
	logged map[string]bool
}

func recordJobs(t *testing.T, ns string) *jobRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &jobRecorder{jobs: map[string]bool{}, logged: map[string]bool{}}
	jobs, err := env.cs.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := env.cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev := range jobs.ResultChan() {
			if ev.Type == watch.Error {
				continue
			}
			b, _ := json.Marshal(ev.Object)
			r.mu.Lock()
			r.text.Write(b)
			if m, ok := ev.Object.(metav1.Object); ok {
				r.jobs[m.GetName()] = true
			}
			r.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev := range pods.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			b, _ := json.Marshal(p)
			r.mu.Lock()
			r.text.Write(b)
			r.mu.Unlock()
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				continue
			}
			for _, c := range p.Spec.Containers {
				logs, err := env.cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
				if err != nil {
					continue // deleted already: its Job's record stays
				}
				r.mu.Lock()
				r.text.Write(logs)
				r.logged[p.Name] = true
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); jobs.Stop(); pods.Stop(); wg.Wait() })
	return r
}

// seen returns what was recorded and says where it came from.
func (r *jobRecorder) seen() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.text.String(), fmt.Sprintf("%d Jobs as they changed, the logs of %d of their pods", len(r.jobs), len(r.logged))
}

package operator

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// MetricsAuth is a metricsserver.FilterProvider: a scrape must bring a bearer token the API server
// authenticates (TokenReview) for an identity it authorises to GET the path (SubjectAccessReview,
// a nonResourceURLs rule such as the chart's metrics-reader ClusterRole). What controller-runtime's
// filters.WithAuthenticationAndAuthorization does, without its dependency on k8s.io/apiserver
// (measured: 18 s more compilation, CEL and OpenTelemetry linked into the manager).
// Answers are cached for a minute (allowed) or ten seconds (refused), as theirs are.
func MetricsAuth(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	a := &metricsAuth{cs: cs, cache: map[string]verdict{}}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			code, err := a.check(r.Context(), token, strings.ToLower(r.Method), r.URL.Path)
			if err != nil {
				log.Error(err, "checking a metrics request")
			}
			if code != http.StatusOK {
				http.Error(w, http.StatusText(code), code)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

type verdict struct {
	code    int
	expires time.Time
}

type metricsAuth struct {
	cs    kubernetes.Interface
	mu    sync.Mutex
	cache map[string]verdict // by token, verb and path
}

// maxCached bounds the cache: scrapers are few; a flood of made-up tokens must not grow it.
const maxCached = 256

func (a *metricsAuth) check(ctx context.Context, token, verb, path string) (int, error) {
	key := verb + " " + path + " " + token
	now := time.Now()
	a.mu.Lock()
	v, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(v.expires) {
		return v.code, nil
	}
	code, err := a.review(ctx, token, verb, path)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	ttl := 10 * time.Second
	if code == http.StatusOK {
		ttl = time.Minute
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxCached {
		clear(a.cache)
	}
	a.cache[key] = verdict{code, now.Add(ttl)}
	return code, nil
}

func (a *metricsAuth) review(ctx context.Context, token, verb, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr, err := a.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb}}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}
